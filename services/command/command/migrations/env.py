from alembic import context

import command.models  # noqa: F401 - registers the tables
from common.migrations import run_env

run_env(context)

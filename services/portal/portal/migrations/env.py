from alembic import context

import portal.models  # noqa: F401 - registers the tables
from common.migrations import run_env

run_env(context)

-- One database per service (docker-compose; `make up` uses SQLite files in var/).
CREATE DATABASE checkin;
CREATE DATABASE supplies;
CREATE DATABASE dispatch;
CREATE DATABASE timebank;
CREATE DATABASE command;
CREATE DATABASE messaging;
CREATE DATABASE portal;

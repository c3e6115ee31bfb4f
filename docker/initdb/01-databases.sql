-- First start of the TimescaleDB container: the warehouse (with the extension) and Dagster's storage.
CREATE DATABASE sightline;
CREATE DATABASE dagster;
\connect sightline
CREATE EXTENSION IF NOT EXISTS timescaledb;

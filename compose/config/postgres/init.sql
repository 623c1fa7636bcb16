-- Databases of the platform, created once in the lab's PostgreSQL.
CREATE DATABASE nessie;
CREATE DATABASE iceberg;
CREATE DATABASE keycloak;
CREATE DATABASE agp;
CREATE DATABASE jupyterhub;

-- For a PostgreSQL you set up yourself (the chart's setup.enabled=false; docker-compose and the chart otherwise run
-- python -m agp.hub.setup, which makes the same): each service's own role owns its database, and no other role may
-- connect to it; the superuser sets up and is used by no service. The lab makes the same roles at every `agp lab up`
-- (agp.compose.services.postgres_roles) and reads only the CREATE DATABASE lines above. Passwords are the lab-only
-- defaults of agp.core.settings.Credentials; tests/unit/test_composition.py checks that the two agree.
CREATE ROLE nessie LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD 'agp-lab-nessie-db';
CREATE ROLE iceberg LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD 'agp-lab-iceberg-db';
CREATE ROLE keycloak LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD 'agp-lab-keycloak-db';
CREATE ROLE jupyterhub LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD 'agp-lab-hub-db';
CREATE ROLE agp_workspaces LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD 'agp-lab-workspaces-db';
ALTER DATABASE nessie OWNER TO nessie;
ALTER DATABASE iceberg OWNER TO iceberg;
ALTER DATABASE keycloak OWNER TO keycloak;
ALTER DATABASE jupyterhub OWNER TO jupyterhub;
ALTER DATABASE agp OWNER TO agp_workspaces;
REVOKE ALL ON DATABASE nessie, iceberg, keycloak, jupyterhub, agp FROM PUBLIC;
REVOKE CONNECT ON DATABASE postgres, template1 FROM PUBLIC;
-- The hub's spawner and home page read the workspace database.
GRANT CONNECT ON DATABASE agp TO jupyterhub;
\connect agp
GRANT USAGE ON SCHEMA public TO jupyterhub;
ALTER DEFAULT PRIVILEGES FOR ROLE agp_workspaces IN SCHEMA public GRANT SELECT ON TABLES TO jupyterhub;

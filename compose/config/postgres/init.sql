-- Databases of the platform, created once in the lab's PostgreSQL (and by docker-compose's postgres entrypoint).
CREATE DATABASE nessie;
CREATE DATABASE keycloak;
CREATE DATABASE agp;
CREATE DATABASE jupyterhub;

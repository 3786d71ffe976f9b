// Numbered schema migrations, applied in order at start; a migration once landed is never edited.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'apps, releases, services, instances, events',
    sql: `
      CREATE TABLE apps (
        name TEXT PRIMARY KEY,
        current_release INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE releases (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        spec_json TEXT NOT NULL,
        source_dir TEXT NOT NULL,
        description TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (app, version)
      );
      CREATE TABLE services (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        release INTEGER NOT NULL,
        desired_count INTEGER NOT NULL,
        config_hash TEXT NOT NULL,
        spec_json TEXT NOT NULL,
        source_dir TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        next_start_at INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (app, name)
      );
      CREATE TABLE instances (
        id TEXT PRIMARY KEY,
        app TEXT NOT NULL,
        service TEXT NOT NULL,
        release INTEGER NOT NULL,
        config_hash TEXT NOT NULL,
        state TEXT NOT NULL,
        pid INTEGER,
        process_start INTEGER,
        port INTEGER,
        created_at INTEGER NOT NULL,
        healthy_at INTEGER,
        ended_at INTEGER,
        exit_code INTEGER,
        exit_signal TEXT,
        reason TEXT,
        stdout_path TEXT NOT NULL,
        stderr_path TEXT NOT NULL
      );
      CREATE INDEX instances_by_service ON instances (app, service, state);
      CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,
        app TEXT,
        service TEXT,
        instance TEXT,
        message TEXT NOT NULL,
        data_json TEXT NOT NULL
      );
      CREATE INDEX events_by_app ON events (app, id);
    `,
  },
  {
    version: 2,
    name: 'instance output in one JSON-lines file; secrets (envelope-encrypted versions) and config vars',
    sql: `
      ALTER TABLE instances ADD COLUMN log_path TEXT NOT NULL DEFAULT '';
      UPDATE instances SET log_path = substr(stdout_path, 1, length(stdout_path) - length('.out.log')) || '.log'
        WHERE stdout_path LIKE '%.out.log';
      ALTER TABLE instances DROP COLUMN stdout_path;
      ALTER TABLE instances DROP COLUMN stderr_path;

      -- One row: a value sealed with the master key, so a wrong key is refused before it touches anything.
      CREATE TABLE secret_master_check (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        check_value BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        rotated_at INTEGER
      );
      -- A secret per app and name; labels point at versions. deleted_at/purge_at: soft delete, recovery window.
      CREATE TABLE secrets (
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        current_version INTEGER NOT NULL,
        previous_version INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        deleted_at INTEGER,
        purge_at INTEGER,
        PRIMARY KEY (app, name)
      );
      -- Each version: its value sealed with its own data key, the data key sealed with the master key.
      CREATE TABLE secret_versions (
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        sealed_key BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (app, name, version),
        FOREIGN KEY (app, name) REFERENCES secrets (app, name) ON DELETE CASCADE
      );
      CREATE TABLE config_vars (
        app TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (app, key)
      );
    `,
  },
  {
    version: 3,
    name: 'observability: metric points, collector cursors, alarms, log drains',
    sql: `
      -- One row per instance per time bucket, at each resolution (10 s and 60 s are written together, so the
      -- coarse series is rolled up as data arrives and needs no batch job). instance '' holds what reached no
      -- target (the proxy's 503s for an empty group).
      CREATE TABLE metric_points (
        resolution INTEGER NOT NULL,
        at INTEGER NOT NULL,
        app TEXT NOT NULL,
        service TEXT NOT NULL,
        release INTEGER NOT NULL,
        instance TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        s1xx INTEGER NOT NULL DEFAULT 0,
        s2xx INTEGER NOT NULL DEFAULT 0,
        s3xx INTEGER NOT NULL DEFAULT 0,
        s4xx INTEGER NOT NULL DEFAULT 0,
        s5xx INTEGER NOT NULL DEFAULT 0,
        e499 INTEGER NOT NULL DEFAULT 0,
        e502 INTEGER NOT NULL DEFAULT 0,
        e503 INTEGER NOT NULL DEFAULT 0,
        e504 INTEGER NOT NULL DEFAULT 0,
        bytes_in INTEGER NOT NULL DEFAULT 0,
        bytes_out INTEGER NOT NULL DEFAULT 0,
        latency_json TEXT NOT NULL DEFAULT '{}',
        latency_max REAL NOT NULL DEFAULT 0,
        samples INTEGER NOT NULL DEFAULT 0,
        in_flight_sum REAL NOT NULL DEFAULT 0,
        usage_samples INTEGER NOT NULL DEFAULT 0,
        cpu_sum REAL NOT NULL DEFAULT 0,
        memory_sum REAL NOT NULL DEFAULT 0,
        memory_limit REAL,
        healthy INTEGER NOT NULL DEFAULT 0,
        unhealthy INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (resolution, app, service, instance, at)
      );
      CREATE INDEX metric_points_by_time ON metric_points (resolution, at);
      CREATE TABLE metric_cursors (
        target TEXT PRIMARY KEY,
        counters_json TEXT NOT NULL,
        at INTEGER NOT NULL
      );
      CREATE TABLE alarms (
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        rule_json TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        state_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (app, name)
      );
      CREATE TABLE log_drains (
        id TEXT PRIMARY KEY,
        app TEXT NOT NULL,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        options_json TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 4,
    name: 'release artifacts and deployments',
    sql: `
      ALTER TABLE releases ADD COLUMN artifact_digest TEXT;
      CREATE TABLE deployments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL,
        kind TEXT NOT NULL,
        from_release INTEGER,
        to_release INTEGER NOT NULL,
        state TEXT NOT NULL,
        services_json TEXT NOT NULL,
        reason TEXT,
        started_at INTEGER NOT NULL,
        ended_at INTEGER
      );
      CREATE INDEX deployments_by_app ON deployments (app, id);
    `,
  },
  {
    version: 5,
    name: 'pipeline runs and jobs',
    sql: `
      CREATE TABLE pipeline_runs (
        app TEXT NOT NULL,
        number INTEGER NOT NULL,
        source TEXT NOT NULL,
        revision TEXT NOT NULL,
        ref TEXT,
        source_dir TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        deploy_mode TEXT NOT NULL,
        release INTEGER,
        deployment INTEGER,
        actor TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        ended_at INTEGER,
        PRIMARY KEY (app, number)
      );
      CREATE TABLE pipeline_jobs (
        app TEXT NOT NULL,
        run INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        stage TEXT NOT NULL,
        command TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        output TEXT NOT NULL DEFAULT '',
        started_at INTEGER,
        ended_at INTEGER,
        PRIMARY KEY (app, run, idx)
      );
    `,
  },
];

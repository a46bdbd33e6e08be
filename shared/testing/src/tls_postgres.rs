//! A Postgres cluster of the test's own that accepts only TLS connections, with a CA and a server certificate made
//! for it, so tests can run Ackbox with `sslmode=verify-full` (and prove a wrong CA is refused).
//!
//! It runs the machine's PostgreSQL binaries (`initdb`, `pg_ctl` from `/usr/lib/postgresql/<version>/bin`) on a free
//! port, in a temporary folder, as the `postgres` user when the test runs as root (initdb refuses root). Its
//! `pg_hba.conf` has only `hostssl` lines, so a connection that does not use TLS is refused: a test that passes
//! against it used TLS. Certificates come from [`crate::certs`]. The cluster is stopped and removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running TLS-only cluster.
pub struct TlsPostgres {
    dir: PathBuf,
    bin: PathBuf,
    /// The port it listens on (127.0.0.1 only).
    pub port: u16,
    certs: crate::certs::TestCerts,
}

pub(crate) fn run(what: &str, cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// `program` run as the cluster's owner, from the cluster's folder (which that owner can enter): `postgres` when the
/// test runs as root (initdb and pg_ctl refuse root).
fn as_owner(program: &Path, dir: &Path) -> Command {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.current_dir(dir);
    cmd
}

/// The newest PostgreSQL server binaries on the machine.
fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("/usr/lib/postgresql: the PostgreSQL server packages are needed")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("no initdb under /usr/lib/postgresql/*/bin")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl TlsPostgres {
    /// Makes the certificates, initialises and starts the cluster, and waits until it accepts connections.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("ackbox-tls-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let certs = crate::certs::make(&dir);
        let bin = pg_bin();
        let data = dir.join("data");
        if is_root() {
            run("chown", Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir));
        }
        run("chmod server.key", Command::new("chmod").args(["600"]).arg(&certs.server_key));
        run(
            "initdb",
            as_owner(&bin.join("initdb"), &dir).args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"]).arg(&data),
        );
        let port = free_port();
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{dir}'\nssl = on\n\
             ssl_cert_file = '{cert}'\nssl_key_file = '{key}'\nfsync = off\nmax_connections = 60\n\
             shared_buffers = 32MB\n",
            dir = dir.display(),
            cert = certs.server_cert.display(),
            key = certs.server_key.display()
        );
        let mut pg_conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("postgresql.conf");
        pg_conf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), pg_conf).expect("write postgresql.conf");
        std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
            .expect("write pg_hba.conf");
        run(
            "pg_ctl start",
            as_owner(&bin.join("pg_ctl"), &dir)
                .args(["-w", "-t", "60", "-l"])
                .arg(dir.join("server.log"))
                .arg("-D")
                .arg(&data)
                .arg("start"),
        );
        Self { dir, bin, port, certs }
    }

    /// The CA that signed the server's certificate.
    pub fn ca(&self) -> PathBuf {
        self.certs.ca.clone()
    }

    /// A CA that did not sign it.
    pub fn other_ca(&self) -> PathBuf {
        self.certs.other_ca.clone()
    }

    /// A URL for `user` on `db` with `sslmode=verify-full` against [`Self::ca`], by host name.
    pub fn url(&self, user: &str, db: &str) -> String {
        self.url_with(user, db, &format!("sslmode=verify-full&sslrootcert={}", self.ca().display()))
    }

    /// A URL for `user` on `db` at `localhost` with the given query (`sslmode=…&sslrootcert=…`).
    pub fn url_with(&self, user: &str, db: &str, query: &str) -> String {
        format!("postgres://{user}@localhost:{}/{db}?{query}", self.port)
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = as_owner(&self.bin.join("pg_ctl"), &self.dir)
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .arg("stop")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

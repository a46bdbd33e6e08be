//! Certificates for TLS tests, made with the machine's `openssl` command: a CA, a server certificate it signed for
//! `localhost` and `127.0.0.1`, and a second CA that signed nothing (the "wrong CA" of negative tests).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tls_postgres::run;

/// The files [`make`] wrote.
#[derive(Clone, Debug)]
pub struct TestCerts {
    /// The CA that signed the server certificate (PEM).
    pub ca: PathBuf,
    /// A CA that signed nothing here (PEM).
    pub other_ca: PathBuf,
    /// The server certificate (PEM), for `localhost` and `127.0.0.1`.
    pub server_cert: PathBuf,
    /// Its private key (PEM, unencrypted).
    pub server_key: PathBuf,
}

fn make_ca(dir: &Path, name: &str) {
    let subject = format!("/CN=Ackbox test {name}");
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    run(
        "openssl: CA",
        Command::new("openssl").current_dir(dir).args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &subject,
            "-keyout",
            &key,
            "-out",
            &pem,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]),
    );
}

/// Writes `ca.pem`, `other-ca.pem`, `server.pem` and `server.key` (and their by-products) into `dir`.
pub fn make(dir: &Path) -> TestCerts {
    std::fs::create_dir_all(dir).expect("certificate folder");
    make_ca(dir, "ca");
    make_ca(dir, "other-ca");
    run(
        "openssl: server key and request",
        Command::new("openssl").current_dir(dir).args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]),
    );
    std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").expect("ext file");
    run(
        "openssl: server certificate",
        Command::new("openssl").current_dir(dir).args([
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]),
    );
    TestCerts {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    }
}

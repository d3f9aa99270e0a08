//! A real SMTP server for the email tests: `aiosmtpd` (Debian's `python3-aiosmtpd`, which
//! `.ci/run` installs) on a loopback port, storing what it receives in a Maildir the test reads.
//! Without it a test is skipped, except under CI, where it fails.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// Debian's Python, where `python3-aiosmtpd` installs (not a pyenv or venv one).
const PYTHON: &str = "/usr/bin/python3";

/// aiosmtpd with STARTTLS required and one account: `server.py PORT CERT KEY USER PASSWORD
/// MAILDIR`.
const AUTH_SERVER: &str = r#"
import signal, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, user, password, maildir = sys.argv[1:7]

def authenticate(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == user.encode() \
        and data.password == password.encode()
    return AuthResult(success=ok)

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port),
    authenticator=authenticate, auth_required=True, tls_context=context,
    require_starttls=True)
controller.start()
signal.sigwait({signal.SIGTERM, signal.SIGINT})
controller.stop()
"#;

pub struct SmtpServer {
    process: Child,
    pub port: u16,
    maildir: TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// One received message: its headers (names lower-cased) and its decoded text body.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first `http://` or `https://` link of the body that contains `part`.
    pub fn link(&self, part: &str) -> Option<String> {
        self.body
            .split_whitespace()
            .find(|w| (w.starts_with("http://") || w.starts_with("https://")) && w.contains(part))
            .map(str::to_owned)
    }
}

fn has_aiosmtpd() -> bool {
    Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl SmtpServer {
    /// Starts the server and waits until it accepts connections; `None` without `aiosmtpd`
    /// (a failure under CI).
    pub async fn start() -> Option<SmtpServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        SmtpServer::start_on(port).await
    }

    /// [`SmtpServer::start`] on a chosen port.
    pub async fn start_on(port: u16) -> Option<SmtpServer> {
        SmtpServer::start_with(port, &[]).await
    }

    /// On a chosen port, with more `aiosmtpd` options (`--tlscert`, `--smtpscert`, ...).
    pub async fn start_with(port: u16, options: &[String]) -> Option<SmtpServer> {
        if !has_aiosmtpd() {
            assert!(
                std::env::var("CI").is_err(),
                "CI needs python3-aiosmtpd for the email tests"
            );
            eprintln!("skipped: no python3-aiosmtpd on this machine");
            return None;
        }
        let maildir = TempDir::new("oxmed_maildir");
        let mut command = Command::new(PYTHON);
        command
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(options)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.0.join("mail"));
        SmtpServer::run(command, port, maildir).await
    }

    /// An SMTP server that requires STARTTLS (with this certificate) and then AUTH LOGIN or
    /// PLAIN as `user` with `password`: aiosmtpd's own server, set up by a short script, since
    /// its command line has no authentication options.
    pub async fn start_authenticating(
        port: u16,
        cert: &str,
        key: &str,
        user: &str,
        password: &str,
    ) -> Option<SmtpServer> {
        if !has_aiosmtpd() {
            assert!(
                std::env::var("CI").is_err(),
                "CI needs python3-aiosmtpd for the email tests"
            );
            return None;
        }
        let maildir = TempDir::new("oxmed_maildir");
        let script = maildir.0.join("server.py");
        std::fs::write(&script, AUTH_SERVER).unwrap();
        let mut command = Command::new(PYTHON);
        command
            .arg(&script)
            .arg(port.to_string())
            .args([cert, key, user, password])
            .arg(maildir.0.join("mail"));
        SmtpServer::run(command, port, maildir).await
    }

    async fn run(mut command: Command, port: u16, maildir: TempDir) -> Option<SmtpServer> {
        let process = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        let server = SmtpServer {
            process,
            port,
            maildir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "aiosmtpd did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        let mut files: Vec<_> = ["new", "cur"]
            .iter()
            .filter_map(|d| std::fs::read_dir(self.maildir.0.join("mail").join(d)).ok())
            .flatten()
            .filter_map(Result::ok)
            .map(|e| {
                let modified = e.metadata().and_then(|m| m.modified()).ok();
                (modified, e.path())
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read_to_string(path).ok())
            .map(|raw| parse(&raw))
            .collect()
    }

    /// Waits (at most 15 s) for the first message to `to` whose subject is `subject` among
    /// those after the first `skip` messages.
    pub async fn wait_for(&self, skip: usize, to: &str, subject: &str) -> Received {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found = self.messages().into_iter().skip(skip).find(|m| {
                m.header("to").is_some_and(|t| t.contains(to))
                    && m.header("subject") == Some(subject)
            });
            if let Some(m) = found {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no message {subject:?} to {to}: {:?}",
                self.messages()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Headers (unfolded) and body; a quoted-printable body is decoded.
fn parse(raw: &str) -> Received {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = headers.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let quoted = headers.iter().any(|(k, v)| {
        k == "content-transfer-encoding" && v.eq_ignore_ascii_case("quoted-printable")
    });
    let body = if quoted {
        quoted_printable(body)
    } else {
        body.to_owned()
    };
    Received { headers, body }
}

fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

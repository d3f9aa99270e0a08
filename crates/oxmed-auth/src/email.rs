//! The server's emails (spec §6): invites, password resets, over SMTP with `lettre`. A message
//! that cannot be sent at once is tried again in the background with growing delays, and every
//! failure is logged; it never fails the request that wrote it. With no SMTP server configured
//! (development), a message is written to the log instead, link included.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::failure::{AuthFailure, Result};

/// One message to one person.
#[derive(Clone)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// Only the recipient and subject: bodies hold set-password links.
impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// What became of a message handed to [`Mailer::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The SMTP server accepted it.
    Sent,
    /// The first attempt failed; it is being tried again in the background.
    Retrying,
    /// No SMTP server is configured: the message went to the log.
    Logged,
}

#[derive(Clone)]
pub struct MailerConfig {
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtps://host:465` (TLS),
    /// `smtp://host:25` (plain), as `lettre` reads them; `None`: log messages instead.
    pub smtp_url: Option<String>,
    /// The `From` of every message.
    pub from: String,
    /// Attempts of a message in all (the first one included).
    pub attempts: u32,
    /// The wait before the second attempt; each later wait is four times the one before.
    pub retry_delay: Duration,
    /// PEM certificates trusted for the SMTP server's TLS besides the public roots (a relay
    /// with a certificate of a private CA).
    pub extra_roots_pem: Option<Vec<u8>>,
    /// The longest one attempt may take, all of it: a server that stops answering mid-dialogue
    /// must not hold the request that sends (an invite) for minutes.
    pub attempt_timeout: Duration,
}

impl std::fmt::Debug for MailerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailerConfig")
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Default for MailerConfig {
    fn default() -> Self {
        MailerConfig {
            smtp_url: None,
            from: "oxmed <noreply@localhost>".into(),
            attempts: 6,
            retry_delay: Duration::from_secs(5),
            extra_roots_pem: None,
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    attempts: u32,
    retry_delay: Duration,
    attempt_timeout: Duration,
}

/// One attempt, within `limit` whatever the server does.
async fn attempt(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    message: &Message,
    limit: Duration,
) -> std::result::Result<(), String> {
    match tokio::time::timeout(limit, transport.send(message.clone())).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// A message that could not be built (a malformed address): nothing to retry.
fn unbuildable(e: impl std::fmt::Display) -> AuthFailure {
    AuthFailure::Internal(format!("an email could not be built: {e}"))
}

impl Mailer {
    /// Checks the configuration once, at start-up: a bad SMTP URL or sender is an error then,
    /// not a lost message later.
    pub fn new(config: &MailerConfig) -> Result<Mailer> {
        let transport = match &config.smtp_url {
            None => None,
            Some(url) => {
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| AuthFailure::Internal(format!("invalid SMTP URL: {e}")))?
                    .timeout(Some(Duration::from_secs(15)));
                if let Some(pem) = &config.extra_roots_pem
                    && let Some(tls) = tls_with_roots(url, pem)?
                {
                    builder = builder.tls(tls);
                }
                Some(builder.build())
            }
        };
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|e| AuthFailure::Internal(format!("invalid email sender: {e}")))?;
        Ok(Mailer {
            transport,
            from,
            attempts: config.attempts.max(1),
            retry_delay: config.retry_delay,
            attempt_timeout: config.attempt_timeout,
        })
    }

    /// Sends `email` now if it can; otherwise keeps trying in the background (see the module).
    pub async fn send(&self, email: Email) -> Result<Delivery> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(email.to.parse::<Mailbox>().map_err(unbuildable)?)
            .subject(email.subject.clone())
            .body(email.text.clone())
            .map_err(unbuildable)?;
        let Some(transport) = self.transport.clone() else {
            tracing::info!(to = %email.to, subject = %email.subject, body = %email.text,
                "email not sent (no SMTP server configured)");
            return Ok(Delivery::Logged);
        };
        match attempt(&transport, &message, self.attempt_timeout).await {
            Ok(()) => Ok(Delivery::Sent),
            Err(e) => {
                tracing::warn!(to = %email.to, subject = %email.subject, error = %e,
                    "email not sent; trying again");
                let tries = Tries {
                    attempts: self.attempts,
                    delay: self.retry_delay,
                    limit: self.attempt_timeout,
                };
                tokio::spawn(retry(transport, message, email, tries));
                Ok(Delivery::Retrying)
            }
        }
    }
}

struct Tries {
    attempts: u32,
    delay: Duration,
    limit: Duration,
}

async fn retry(
    transport: AsyncSmtpTransport<Tokio1Executor>,
    message: Message,
    email: Email,
    tries: Tries,
) {
    let mut delay = tries.delay;
    for n in 2..=tries.attempts {
        tokio::time::sleep(delay).await;
        match attempt(&transport, &message, tries.limit).await {
            Ok(()) => {
                tracing::info!(to = %email.to, subject = %email.subject, attempt = n, "email sent");
                return;
            }
            Err(e) => {
                tracing::warn!(to = %email.to, subject = %email.subject, attempt = n, error = %e,
                    "email not sent");
            }
        }
        delay = delay.saturating_mul(4);
    }
    tracing::error!(to = %email.to, subject = %email.subject, attempts = tries.attempts,
        "email given up: it was never accepted by the SMTP server");
}

/// The TLS mode the URL asks for (`smtps://`: TLS from the start; `?tls=required` or
/// `?tls=opportunistic`: STARTTLS, as `lettre` reads them), trusting `pem` as well; `None` for
/// a URL without TLS.
fn tls_with_roots(smtp_url: &str, pem: &[u8]) -> Result<Option<Tls>> {
    let bad = |e: &dyn std::fmt::Display| AuthFailure::Internal(format!("invalid SMTP TLS: {e}"));
    let url = url::Url::parse(smtp_url).map_err(|e| bad(&e))?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let mode = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let mut params = TlsParameters::builder(host);
    for cert in pem_blocks(pem) {
        params = params.add_root_certificate(Certificate::from_pem(&cert).map_err(|e| bad(&e))?);
    }
    let params = params.build_rustls().map_err(|e| bad(&e))?;
    Ok(match (url.scheme(), mode.as_deref()) {
        ("smtps", _) => Some(Tls::Wrapper(params)),
        (_, Some("required")) => Some(Tls::Required(params)),
        (_, Some("opportunistic")) => Some(Tls::Opportunistic(params)),
        _ => None,
    })
}

/// Each `-----BEGIN CERTIFICATE-----` block of a PEM file on its own.
fn pem_blocks(pem: &[u8]) -> Vec<Vec<u8>> {
    const END: &str = "-----END CERTIFICATE-----";
    let text = String::from_utf8_lossy(pem);
    text.split_inclusive(END)
        .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
        .map(|b| b.trim().as_bytes().to_vec())
        .collect()
}

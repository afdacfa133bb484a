//! Lowering one `[[service.probe]]`: its check, endpoints (each port checked) and deadline.

use std::time::Duration;

use toml::Spanned;

use super::lower::Parser;
use super::raw::{echo, ProbeKind, RawProbe};
use super::{InventoryError, InventoryErrorKind};
use crate::model::{Endpoint, EndpointClass, ProbeCheck, ProbeSpec};

/// The port of a `host:port` (TCP) or of an `http://host[:port]/...` URL, checked to be in
/// 1..=65535; `None` when a URL names none (port 80).
fn port_of(target: &str, url: bool) -> Result<Option<u16>, String> {
    let authority = if url {
        let rest = target.strip_prefix("http://").unwrap_or(target);
        rest.split(['/', '?', '#']).next().unwrap_or("")
    } else {
        target
    };
    let port = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.contains(']') => port,
        _ if url => return Ok(None),
        _ => return Err(format!("{}: write host:port", echo(target))),
    };
    match port.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(Some(p as u16)),
        _ => Err(format!(
            "{}: port {} is not in 1..=65535",
            echo(target),
            echo(port)
        )),
    }
}

impl Parser<'_> {
    pub(super) fn probe(
        &self,
        spanned: &Spanned<RawProbe>,
        container: Option<&str>,
        default_timeout: Duration,
    ) -> Result<ProbeSpec, InventoryError> {
        let p = spanned.get_ref();
        let offset = spanned.span().start;
        let bad = |at: usize, key: &str, why: String| {
            self.error_at(
                at,
                format!("service.probe.{key}"),
                InventoryErrorKind::Invalid,
                why,
            )
        };
        let timeout =
            self.positive_duration(&p.timeout, "service.probe.timeout", default_timeout)?;
        // Endpoints in order (the single `url`/`address` first), each with where it is written.
        let endpoints = |url: bool| -> Result<Vec<Endpoint>, InventoryError> {
            let field = if url { "url" } else { "address" };
            let single = if url { &p.url } else { &p.address };
            let mut written = Vec::new();
            if let Some(t) = single {
                written.push((EndpointClass::Localhost, t, field));
            }
            for e in &p.endpoints {
                let e_ref = e.get_ref();
                match if url { &e_ref.url } else { &e_ref.address } {
                    Some(t) => written.push((e_ref.class, t, "endpoints")),
                    None => {
                        return Err(bad(
                            e.span().start,
                            "endpoints",
                            format!("each endpoint of this probe needs `{field}`"),
                        ))
                    }
                }
            }
            if written.is_empty() {
                return Err(bad(
                    offset,
                    field,
                    format!("this probe needs `{field}` or `endpoints`"),
                ));
            }
            let mut out = Vec::new();
            for (class, target, key) in written {
                let text = target.get_ref();
                if url && !text.starts_with("http://") {
                    return Err(bad(
                        target.span().start,
                        key,
                        format!(
                            "{}: only plain http:// URLs are probed (no TLS in the agent)",
                            echo(text)
                        ),
                    ));
                }
                port_of(text, url).map_err(|why| bad(target.span().start, key, why))?;
                out.push(Endpoint {
                    class,
                    target: text.clone(),
                });
            }
            Ok(out)
        };
        let check =
            match p.kind {
                ProbeKind::Process => ProbeCheck::Process,
                ProbeKind::Http => {
                    let endpoints = endpoints(true)?;
                    let (at, [lo, hi]) = p
                        .status
                        .as_ref()
                        .map_or((offset, [200, 399]), |s| (s.span().start, *s.get_ref()));
                    if lo > hi || !(100..=599).contains(&lo) || !(100..=599).contains(&hi) {
                        return Err(bad(
                            at,
                            "status",
                            "write [lowest, highest], e.g. [200, 299]".into(),
                        ));
                    }
                    ProbeCheck::Http {
                        endpoints,
                        status: (lo, hi),
                    }
                }
                ProbeKind::Tcp => ProbeCheck::Tcp {
                    endpoints: endpoints(false)?,
                },
                ProbeKind::Container => ProbeCheck::Container {
                    name: match (&p.container, container) {
                        (Some(n), _) => n.clone(),
                        (None, Some(n)) => n.to_string(),
                        (None, None) => return Err(bad(
                            offset,
                            "container",
                            "a container probe needs `container` unless the service is a container"
                                .into(),
                        )),
                    },
                },
                ProbeKind::Command => {
                    let (at, argv) = p.argv.as_ref().map_or((offset, Vec::new()), |a| {
                        (a.span().start, a.get_ref().clone())
                    });
                    if argv.is_empty() || argv[0].is_empty() {
                        return Err(bad(
                            at,
                            "argv",
                            "a command probe needs argv = [\"/path/to/program\", ...]".into(),
                        ));
                    }
                    ProbeCheck::Command {
                        argv,
                        exit_code: p.exit_code.unwrap_or(0),
                    }
                }
            };
        Ok(ProbeSpec { check, timeout })
    }
}

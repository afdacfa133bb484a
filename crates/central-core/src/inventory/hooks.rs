//! Lowering `[[service.before_restart]]` and `[[service.after_heal]]`: each hook's kind, the
//! keys its kind needs (and no other), and its deadline.

use std::time::Duration;

use toml::Spanned;

use super::lower::Parser;
use super::raw::{echo, HookKind, RawHook, RawService};
use super::{InventoryError, InventoryErrorKind};
use crate::model::{Hook, HookAction, Hooks, ManagerKind};

/// A hook's deadline when the file gives none.
pub(crate) const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The methods an `http` hook may use.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

impl Parser<'_> {
    /// The service's hooks, each checked.
    pub(super) fn hooks(&self, svc: &RawService, label: &str) -> Result<Hooks, InventoryError> {
        let lower = |point: &str, raw: &[Spanned<RawHook>]| -> Result<Vec<Hook>, InventoryError> {
            raw.iter()
                .map(|h| self.hook(h, point, svc, label))
                .collect()
        };
        let hooks = Hooks {
            before_restart: lower("before_restart", &svc.before_restart)?,
            after_heal: lower("after_heal", &svc.after_heal)?,
        };
        if svc.monitor_only && !hooks.is_empty() {
            let at = svc
                .before_restart
                .first()
                .or(svc.after_heal.first())
                .map_or(0, |h| h.span().start);
            return Err(self.error_at(
                at,
                "service.monitor_only",
                InventoryErrorKind::Invalid,
                format!("service {label} is monitor-only: it is never healed, so its hooks would never run"),
            ));
        }
        Ok(hooks)
    }

    fn hook(
        &self,
        spanned: &Spanned<RawHook>,
        point: &str,
        svc: &RawService,
        label: &str,
    ) -> Result<Hook, InventoryError> {
        let h = spanned.get_ref();
        let key = |k: &str| format!("service.{point}.{k}");
        let bad = |at: usize, k: &str, why: String| {
            self.error_at(at, key(k), InventoryErrorKind::Invalid, why)
        };
        let missing = |k: &str, kind: &str| {
            self.error_at(
                spanned.span().start,
                key(k),
                InventoryErrorKind::MissingKey,
                format!("service {label}: a {kind} hook needs `{k}`"),
            )
        };
        let kind = match h.kind {
            HookKind::Command => "command",
            HookKind::Http => "http",
            HookKind::FreePort => "free-port",
        };
        // Only the keys of its kind: a `url` on a command hook is a mistake, not a no-op.
        let written: [(&str, Option<usize>); 4] = [
            ("argv", h.argv.as_ref().map(|v| v.span().start)),
            ("method", h.method.as_ref().map(|v| v.span().start)),
            ("url", h.url.as_ref().map(|v| v.span().start)),
            ("port", h.port.as_ref().map(|v| v.span().start)),
        ];
        let allowed: &[&str] = match h.kind {
            HookKind::Command => &["argv"],
            HookKind::Http => &["method", "url"],
            HookKind::FreePort => &["port"],
        };
        if let Some((k, Some(at))) = written
            .iter()
            .find(|(k, at)| at.is_some() && !allowed.contains(k))
        {
            return Err(bad(
                *at,
                k,
                format!("service {label}: `{k}` does not apply to a {kind} hook"),
            ));
        }
        let action = match h.kind {
            HookKind::Command => {
                let argv = h.argv.as_ref().ok_or_else(|| missing("argv", kind))?;
                if argv.get_ref().first().is_none_or(|p| p.is_empty()) {
                    return Err(bad(
                        argv.span().start,
                        "argv",
                        format!("service {label}: argv needs a program"),
                    ));
                }
                HookAction::Command {
                    argv: argv.get_ref().clone(),
                }
            }
            HookKind::Http => {
                let url = h.url.as_ref().ok_or_else(|| missing("url", kind))?;
                let text = url.get_ref();
                let plain = text
                    .strip_prefix("http://")
                    .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
                if !plain || text.parse::<http::Uri>().is_err() {
                    return Err(bad(
                        url.span().start,
                        "url",
                        format!(
                            "service {label}: {} is not a plain http://host[:port]/path URL",
                            echo(text)
                        ),
                    ));
                }
                let method = match &h.method {
                    None => "POST".to_string(),
                    Some(m) => {
                        let upper = m.get_ref().to_ascii_uppercase();
                        if !METHODS.contains(&upper.as_str()) {
                            return Err(bad(
                                m.span().start,
                                "method",
                                format!(
                                    "service {label}: method {} is not one of {}",
                                    echo(m.get_ref()),
                                    METHODS.join(", ")
                                ),
                            ));
                        }
                        upper
                    }
                };
                HookAction::Http {
                    method,
                    url: text.clone(),
                }
            }
            HookKind::FreePort => {
                let port = h.port.as_ref().ok_or_else(|| missing("port", kind))?;
                let Ok(p @ 1..=65535) = u16::try_from(*port.get_ref()).map(u32::from) else {
                    return Err(bad(
                        port.span().start,
                        "port",
                        format!(
                            "service {label}: port {} is not in 1..=65535",
                            port.get_ref()
                        ),
                    ));
                };
                // Its own process is known only through a process manager.
                if svc.manager == ManagerKind::Container {
                    return Err(bad(
                        spanned.span().start,
                        "kind",
                        format!(
                            "service {label}: a free-port hook needs the service's own process, \
                             which a container's manager does not give"
                        ),
                    ));
                }
                HookAction::FreePort { port: p as u16 }
            }
        };
        let timeout = self.positive_duration(&h.timeout, &key("timeout"), DEFAULT_HOOK_TIMEOUT)?;
        Ok(Hook { action, timeout })
    }
}

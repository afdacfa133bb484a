//! Lowering the container keys: a service's `compose = { project, file, service }`, and the
//! substrate's `unit`, `compose_command` and `tls`.

use toml::Spanned;

use super::lower::Parser;
use super::raw::{RawCompose, RawService, RawSubstrate};
use super::{InventoryError, InventoryErrorKind};
use crate::model::{ComposeService, ManagerKind};
use process_manager::ServiceLabel;

/// A Compose project or service name as Compose allows it (it also goes into an argv).
fn compose_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Parser<'_> {
    /// A container service's Compose service, checked: only on `manager = "container"`, not
    /// with `container` (the labels name the container), an absolute file, names Compose takes.
    pub(super) fn compose(
        &self,
        svc: &RawService,
        label: &ServiceLabel,
    ) -> Result<Option<ComposeService>, InventoryError> {
        let Some(spanned) = &svc.compose else {
            return Ok(None);
        };
        let at = spanned.span().start;
        let invalid = |message: String| {
            self.error_at(at, "service.compose", InventoryErrorKind::Invalid, message)
        };
        if svc.manager != ManagerKind::Container {
            return Err(invalid(format!(
                "service {label}: `compose` only applies to manager = \"container\""
            )));
        }
        if svc.container.is_some() {
            return Err(invalid(format!(
                "service {label}: give `container` or `compose`, not both (a Compose service's container is found by its labels)"
            )));
        }
        let RawCompose {
            project,
            file,
            service,
        } = spanned.get_ref();
        let service = service.clone().unwrap_or_else(|| label.to_string());
        for (what, name) in [("project", project), ("service", &service)] {
            if !compose_name_ok(name) {
                return Err(invalid(format!(
                    "service {label}: compose {what} {name:?}: use letters, digits, '_', '.', '-', starting with a letter or digit"
                )));
            }
        }
        if !file.is_absolute() {
            return Err(invalid(format!(
                "service {label}: compose file {}: the path must be absolute",
                file.display()
            )));
        }
        Ok(Some(ComposeService {
            project: project.clone(),
            file: file.clone(),
            service,
        }))
    }

    /// The substrate's systemd unit (a unit name without its `.service`, or with it) and
    /// Compose command, checked.
    pub(super) fn substrate_engine_keys(
        &self,
        sub: &RawSubstrate,
    ) -> Result<(Option<String>, Option<Vec<String>>), InventoryError> {
        let unit = match &sub.unit {
            None => None,
            Some(u) => {
                let name = u.get_ref().trim_end_matches(".service");
                self.unit_label(u, name)?;
                Some(name.to_string())
            }
        };
        let compose_command = match &sub.compose_command {
            None => None,
            Some(argv) if argv.get_ref().is_empty() || argv.get_ref()[0].is_empty() => {
                return Err(self.error_at(
                    argv.span().start,
                    "substrate.compose_command",
                    InventoryErrorKind::Invalid,
                    "the compose command needs a program (e.g. [\"docker\", \"compose\"] or [\"docker-compose\"])",
                ))
            }
            Some(argv) => Some(argv.get_ref().clone()),
        };
        Ok((unit, compose_command))
    }

    fn unit_label(&self, at: &Spanned<String>, name: &str) -> Result<ServiceLabel, InventoryError> {
        ServiceLabel::new(name).map_err(|e| {
            self.error_at(
                at.span().start,
                "substrate.unit",
                InventoryErrorKind::Invalid,
                format!("substrate unit {name:?}: {}", e.rule),
            )
        })
    }
}

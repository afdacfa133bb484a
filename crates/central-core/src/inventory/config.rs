//! Lowering `[service.config]`, the service's desired definition.

use process_manager::{ServiceConfig, ServiceLabel};
use toml::Spanned;

use super::lower::{classify, dotted, join, missing_field, Parser};
use super::raw::{echo, RawConfig};
use super::{InventoryError, InventoryErrorKind};

impl Parser<'_> {
    /// `[service.config]` is a `ServiceConfig` without the label (it is the service's): the
    /// label is added, the table read strictly, and an error reported at the key it concerns.
    pub(super) fn config(
        &self,
        raw: &Spanned<RawConfig>,
        label: &ServiceLabel,
    ) -> Result<ServiceConfig, InventoryError> {
        let offset = raw.span().start;
        let entries = &raw.get_ref().entries;
        let mut table = toml::Table::new();
        for (key, value) in entries {
            if key.get_ref() == "label" {
                match value.get_ref() {
                    toml::Value::String(l) if l == label.as_str() => {}
                    other => {
                        let shown = match other {
                            toml::Value::String(l) => echo(l),
                            v => echo(&v.to_string()),
                        };
                        return Err(self.error_at(
                            key.span().start,
                            "service.config.label",
                            InventoryErrorKind::Invalid,
                            format!(
                                "config label {shown} differs from the service label {label}; \
                                 leave it out"
                            ),
                        ));
                    }
                }
            }
            table.insert(key.get_ref().clone(), value.get_ref().clone());
        }
        table.insert("label".into(), toml::Value::String(label.to_string()));
        let config: ServiceConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let path = dotted(e.path());
                let message = e.into_inner().message().trim().to_string();
                let kind = classify(&message);
                let top = path.split('.').next().unwrap_or("");
                let at =
                    entries
                        .iter()
                        .find(|(k, _)| k.get_ref() == top)
                        .map_or(offset, |(k, v)| match kind {
                            InventoryErrorKind::UnknownKey => k.span().start,
                            _ => v.span().start,
                        });
                let key = match (kind, missing_field(&message)) {
                    (InventoryErrorKind::MissingKey, Some(field)) => join(&path, field),
                    _ => path,
                };
                self.error_at(
                    at,
                    join("service.config", &key),
                    kind,
                    format!("service {label}: {message}"),
                )
            })?;
        config.validate().map_err(|e| {
            self.error_at(
                offset,
                "service.config",
                InventoryErrorKind::Invalid,
                e.to_string(),
            )
        })?;
        Ok(config)
    }
}

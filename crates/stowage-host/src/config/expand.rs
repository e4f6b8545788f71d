//! `${env:VAR}` interpolation in every string value of a backend's tables.

use crate::error::Result;

pub(super) fn expand_table(
    table: &toml::Table,
    prefix: &str,
    expand: &dyn Fn(&str, &str) -> Result<String>,
) -> Result<toml::Table> {
    table
        .iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                expand_value(v, &format!("{prefix}.{k}"), expand)?,
            ))
        })
        .collect()
}

fn expand_value(
    value: &toml::Value,
    key: &str,
    expand: &dyn Fn(&str, &str) -> Result<String>,
) -> Result<toml::Value> {
    Ok(match value {
        toml::Value::String(s) => toml::Value::String(expand(key, s)?),
        toml::Value::Array(items) => toml::Value::Array(
            items
                .iter()
                .map(|v| expand_value(v, key, expand))
                .collect::<Result<_>>()?,
        ),
        toml::Value::Table(t) => toml::Value::Table(expand_table(t, key, expand)?),
        other => other.clone(),
    })
}

/// Expands every `${env:VAR}` in `value`. `$${` is a literal `${`. Returns the name of the
/// first unset variable on failure.
pub fn expand_env(value: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${env:")
            && let Some(end) = after.find('}')
        {
            let var = &after[..end];
            match std::env::var(var) {
                Ok(v) => out.push_str(&v),
                Err(_) => return Err(var.to_owned()),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

//! `stowage credentials resolve` / `stowage parameters resolve`: every entry, resolved or
//! why not; values only with --reveal.

use std::process::ExitCode;

use base64::Engine as _;
use stowage_cnab::validate::check_parameters;
use stowage_cnab::{Bundle, Resolution, ResolvedEntry, SetKind, Source, ValueSet};
use stowage_host::Stowage;
use stowage_host::protocol::ErrorCode;

use super::CmdResult;
use crate::exit;
use crate::output::{self, Output};

/// Resolves `set`; with a bundle and an action, only the entries the action uses, after
/// checking the set against the bundle. Every problem goes in one report.
pub async fn run(
    set: &ValueSet,
    against: Option<(&Bundle, &str)>,
    stowage: &Stowage,
    reveal: bool,
    out: Output,
) -> CmdResult {
    let (mut problems, used) = match against {
        Some((bundle, action)) => (bundle.check_set(set, action), bundle.used_by(set, action)),
        None => (Vec::new(), set.clone()),
    };
    let resolution = stowage_cnab::resolve(&used, stowage).await;
    // Parameters: values checked against their definitions, defaults for the rest.
    let mut defaults = Vec::new();
    if let Some((bundle, action)) = against
        && set.kind == SetKind::Parameters
    {
        let check = check_parameters(bundle, action, &resolution);
        problems.extend(check.problems);
        defaults = check.defaults;
    }
    match out {
        Output::Json => {
            let mut json = as_json(set, &resolution, reveal);
            if against.is_some() && set.kind == SetKind::Parameters {
                json["defaults"] = defaults
                    .iter()
                    .cloned()
                    .collect::<serde_json::Map<_, _>>()
                    .into();
            }
            output::json(&json);
        }
        Output::Text => print_table(&resolution, &defaults, reveal),
    }
    let failures = resolution.failure_report(set);
    if problems.is_empty() && failures.is_none() {
        return Ok(ExitCode::SUCCESS);
    }
    let report = problems
        .iter()
        .cloned()
        .chain(failures)
        .collect::<Vec<_>>()
        .join("\n");
    // A set that does not fit the bundle is refused (7); otherwise every failure missing
    // (unset variables, absent files and keys) is "not found", anything else a failure.
    let code = if !problems.is_empty() {
        exit::REFUSED
    } else if resolution
        .failures()
        .all(|(_, f)| f.code == ErrorCode::NotFound)
    {
        exit::NOT_FOUND
    } else {
        exit::FAILURE
    };
    match out {
        Output::Text => eprintln!("error: {report}"),
        Output::Json => eprintln!(
            "{}",
            serde_json::json!({ "error": {
                "code": match code {
                    exit::NOT_FOUND => "not_found",
                    exit::REFUSED => "invalid_argument",
                    _ => "resolve_failed",
                },
                "message": report,
                "exit_code": code,
            }})
        ),
    }
    Ok(ExitCode::from(code))
}

/// A value for printing: text as is, other bytes as `base64:…`.
fn shown(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) => text.to_owned(),
        Err(_) => format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(value)
        ),
    }
}

fn print_table(resolution: &Resolution, defaults: &[(String, serde_json::Value)], reveal: bool) {
    let mut rows: Vec<Vec<String>> = resolution
        .entries
        .iter()
        .map(|e| {
            let (status, detail) = match &e.outcome {
                Ok(v) if reveal => ("resolved", shown(v.expose())),
                Ok(v) => ("resolved", format!("<hidden, {} bytes>", v.len())),
                Err(f) => ("failed", f.message.clone()),
            };
            vec![e.name.clone(), e.source_words(), status.to_owned(), detail]
        })
        .collect();
    // Defaults come from the bundle, not from a secret: always shown.
    rows.extend(defaults.iter().map(|(name, value)| {
        vec![
            name.clone(),
            "bundle default".to_owned(),
            "default".to_owned(),
            value.to_string(),
        ]
    }));
    output::table(&["NAME", "SOURCE", "STATUS", "VALUE"], &rows);
}

fn as_json(set: &ValueSet, resolution: &Resolution, reveal: bool) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = resolution
        .entries
        .iter()
        .map(|e| entry_json(e, reveal))
        .collect();
    serde_json::json!({
        "name": set.name,
        "namespace": set.namespace,
        "kind": set.kind.collection(),
        "entries": entries,
    })
}

fn entry_json(e: &ResolvedEntry, reveal: bool) -> serde_json::Value {
    // A `value` source's text is the value: hidden like any value.
    let source_text = match &e.source {
        Source::Value(_) if !reveal => serde_json::Value::Null,
        other => other.text().into(),
    };
    let mut json = serde_json::json!({
        "name": e.name,
        "source": { e.source.kind(): source_text },
        "backend": e.backend,
    });
    match &e.outcome {
        Ok(v) => {
            json["resolved"] = true.into();
            json["size"] = v.len().into();
            if reveal {
                json["value"] = shown(v.expose()).into();
            }
        }
        Err(f) => {
            json["resolved"] = false.into();
            json["error"] = serde_json::json!({ "code": f.code.as_str(), "message": f.message });
        }
    }
    json
}

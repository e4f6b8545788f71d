//! Reading sets from YAML or JSON text, reporting every problem at once, each with the
//! file, the line where one can be found, and the entry.
//!
//! Both formats are first read into a JSON value and checked by one set of rules, so a
//! YAML file and a JSON file with the same mistake get the same message. Neither parser
//! keeps positions for values, so the line of an entry or a key is found again in the
//! text (see `locate.rs`); syntax errors carry the parser's own line.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::locate::Locator;
use crate::set::{DEFAULT_SCHEMA_VERSION, Entry, SetKind, Source, ValueSet};

/// The longest name or namespace a storage key allows (see `stowage_host::protocol`).
const MAX_NAME_LEN: usize = 255;

/// One problem in a set file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, where it could be found.
    pub line: Option<usize>,
    /// `credential `db-password``, when the problem is in an entry.
    pub entry: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in one set file (or text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetFileError {
    /// The file, when the text came from one.
    pub path: Option<PathBuf>,
    /// At least one problem, in file order where known.
    pub problems: Vec<Problem>,
}

impl fmt::Display for SetFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            match (&self.path, p.line) {
                (Some(path), Some(line)) => write!(f, "{}:{line}: ", path.display())?,
                (Some(path), None) => write!(f, "{}: ", path.display())?,
                (None, Some(line)) => write!(f, "line {line}: ")?,
                (None, None) => {}
            }
            if let Some(entry) = &p.entry {
                write!(f, "{entry}: ")?;
            }
            f.write_str(&p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for SetFileError {}

/// The syntax of a set file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML (1.2; JSON is also accepted).
    Yaml,
}

impl Format {
    /// `.json` is JSON, `.yaml`/`.yml` YAML; otherwise text starting with `{` is JSON.
    pub fn guess(path: Option<&Path>, text: &str) -> Format {
        match path.and_then(|p| p.extension()).and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            Some(e) if e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml") => {
                Format::Yaml
            }
            _ if text.trim_start().starts_with('{') => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// Reads and checks a set file of kind `kind`.
pub fn read_file(path: &Path, kind: SetKind) -> Result<ValueSet, SetFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| SetFileError {
        path: Some(path.to_owned()),
        problems: vec![problem(None, None, format!("cannot read the file: {e}"))],
    })?;
    parse(&text, Format::guess(Some(path), &text), kind).map_err(|mut e| {
        e.path = Some(path.to_owned());
        e
    })
}

/// Reads and checks a set from text.
pub fn parse(text: &str, format: Format, kind: SetKind) -> Result<ValueSet, SetFileError> {
    let fail = |problems| SetFileError {
        path: None,
        problems,
    };
    let value: Value = match format {
        Format::Json => serde_json::from_str(text).map_err(|e| {
            fail(vec![problem(
                Some(e.line()).filter(|l| *l > 0),
                None,
                format!("not valid JSON: {}", strip_position(&e.to_string())),
            )])
        })?,
        Format::Yaml => serde_yaml_ng::from_str(text).map_err(|e| {
            fail(vec![problem(
                e.location().map(|l| l.line()),
                None,
                format!("not valid YAML: {}", strip_position(&e.to_string())),
            )])
        })?,
    };
    let locator = Locator::new(text);
    let mut checker = Checker {
        kind,
        locator: &locator,
        problems: Vec::new(),
    };
    let set = checker.set(&value);
    match set {
        Some(set) if checker.problems.is_empty() => Ok(set),
        _ => {
            checker.problems.sort_by_key(|p| p.line.unwrap_or(0));
            Err(fail(checker.problems))
        }
    }
}

/// Parsers append " at line 3 column 5"; the line is already in front of the message.
fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn problem(line: Option<usize>, entry: Option<String>, message: String) -> Problem {
    Problem {
        line,
        entry,
        message,
    }
}

/// Applies the rules to a parsed document, collecting problems.
struct Checker<'a, 't> {
    kind: SetKind,
    locator: &'a Locator<'t>,
    problems: Vec<Problem>,
}

impl Checker<'_, '_> {
    fn report(&mut self, line: Option<usize>, entry: Option<String>, message: String) {
        self.problems.push(problem(line, entry, message));
    }

    /// A top-level string, or a problem.
    fn top_string(&mut self, doc: &Map<String, Value>, key: &str) -> Option<String> {
        match doc.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.report(
                    self.locator.key(key),
                    None,
                    format!("`{key}` must be a string, not {}", describe(other)),
                );
                None
            }
        }
    }

    fn set(&mut self, value: &Value) -> Option<ValueSet> {
        let kind = self.kind;
        let Value::Object(doc) = value else {
            self.report(
                None,
                None,
                format!(
                    "a {} must be a mapping with `name` and `{}`, not {}",
                    kind.set_words(),
                    kind.collection(),
                    describe(value)
                ),
            );
            return None;
        };
        if let Some(schema_type) = self.top_string(doc, "schemaType")
            && !schema_type.eq_ignore_ascii_case(kind.schema_type())
        {
            let hint = if schema_type.eq_ignore_ascii_case(kind.other().schema_type()) {
                format!(
                    "; this is a {}: use `stowage {} apply`",
                    kind.other().set_words(),
                    kind.other().collection()
                )
            } else {
                String::new()
            };
            self.report(
                self.locator.key("schemaType"),
                None,
                format!(
                    "`schemaType` is `{schema_type}`, expected `{}`{hint}",
                    kind.schema_type()
                ),
            );
        }
        let schema_version = self
            .top_string(doc, "schemaVersion")
            .unwrap_or_else(|| DEFAULT_SCHEMA_VERSION.to_owned());
        let name = self.top_string(doc, "name");
        match &name {
            None if !doc.contains_key("name") => {
                self.report(None, None, format!("a {} needs a `name`", kind.set_words()))
            }
            Some(n) => {
                if let Err(why) = check_name(n, 1) {
                    self.report(self.locator.key("name"), None, format!("`name` {why}"));
                }
            }
            None => {}
        }
        let namespace = self.top_string(doc, "namespace").unwrap_or_default();
        if let Err(why) = check_name(&namespace, 0) {
            self.report(
                self.locator.key("namespace"),
                None,
                format!("`namespace` {why}"),
            );
        }
        let labels = self.labels(doc.get("labels"));
        let created = self.top_string(doc, "created");
        let modified = self.top_string(doc, "modified");
        let entries = self.entries(doc);
        Some(ValueSet {
            kind,
            schema_version,
            name: name?,
            namespace,
            labels,
            created,
            modified,
            entries: entries?,
        })
    }

    fn labels(&mut self, labels: Option<&Value>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        match labels {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    match scalar_text(v) {
                        Some(text) => {
                            out.insert(k.clone(), text);
                        }
                        None => self.report(
                            self.locator.find(0, k, None).map(|i| i + 1),
                            None,
                            format!("label `{k}` must be a string, not {}", describe(v)),
                        ),
                    }
                }
            }
            Some(other) => self.report(
                self.locator.key("labels"),
                None,
                format!(
                    "`labels` must be a mapping of names to strings, not {}",
                    describe(other)
                ),
            ),
        }
        out
    }

    fn entries(&mut self, doc: &Map<String, Value>) -> Option<Vec<Entry>> {
        let kind = self.kind;
        let list_key = kind.collection();
        let items = match doc.get(list_key) {
            Some(Value::Array(items)) => items,
            Some(Value::Null) => return Some(Vec::new()),
            Some(other) => {
                self.report(
                    self.locator.key(list_key),
                    None,
                    format!(
                        "`{list_key}` must be a list of {{name, source}}, not {}",
                        describe(other)
                    ),
                );
                return None;
            }
            None => {
                let other = kind.other().collection();
                let hint = if doc.contains_key(other) {
                    format!(
                        " (it has `{other}`: this is a {}; use `stowage {other} apply`)",
                        kind.other().set_words()
                    )
                } else {
                    String::new()
                };
                self.report(
                    None,
                    None,
                    format!("a {} needs a `{list_key}` list{hint}", kind.set_words()),
                );
                return None;
            }
        };
        let mut entries = Vec::with_capacity(items.len());
        let mut seen: HashMap<String, Option<usize>> = HashMap::new();
        for (position, item) in items.iter().enumerate() {
            let name = item.get("name").and_then(Value::as_str);
            let line = self.locator.entry(list_key, name, position);
            let label = match name {
                Some(n) => format!("{} `{n}`", kind.entry_word()),
                None => format!("{} #{}", kind.entry_word(), position + 1),
            };
            let Some(entry) = self.entry(item, line, &label) else {
                continue;
            };
            if let Some(first) = seen.get(&entry.name) {
                let first = first.map_or(String::new(), |l| format!(" (first on line {l})"));
                self.report(
                    line,
                    Some(label),
                    format!("appears twice{first}; names must be unique"),
                );
                continue;
            }
            seen.insert(entry.name.clone(), line);
            entries.push(entry);
        }
        Some(entries)
    }

    fn entry(&mut self, item: &Value, line: Option<usize>, label: &str) -> Option<Entry> {
        let label = Some(label.to_owned());
        let Value::Object(map) = item else {
            self.report(
                line,
                label,
                format!(
                    "an entry must be a mapping with `name` and `source`, not {}",
                    describe(item)
                ),
            );
            return None;
        };
        let name = match map.get("name") {
            Some(Value::String(n)) if !n.trim().is_empty() => Some(n.clone()),
            Some(Value::String(_)) | None => {
                self.report(line, label.clone(), "needs a non-empty `name`".into());
                None
            }
            Some(other) => {
                self.report(
                    line,
                    label.clone(),
                    format!("`name` must be a string, not {}", describe(other)),
                );
                None
            }
        };
        let source = self.source(map.get("source"), line, label);
        Some(Entry {
            name: name?,
            source: source?,
        })
    }

    fn source(
        &mut self,
        source: Option<&Value>,
        line: Option<usize>,
        label: Option<String>,
    ) -> Option<Source> {
        let kinds = Source::KINDS.join(", ");
        let source_line = self.locator.in_entry(line, "source").or(line);
        let map = match source {
            Some(Value::Object(map)) => map,
            None => {
                self.report(line, label, format!("needs a `source` with one of {kinds}"));
                return None;
            }
            Some(other) => {
                self.report(
                    source_line,
                    label,
                    format!(
                        "`source` must be a mapping with one of {kinds}, not {}",
                        describe(other)
                    ),
                );
                return None;
            }
        };
        let unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !Source::KINDS.contains(k))
            .collect();
        if !unknown.is_empty() {
            self.report(
                self.locator.in_entry(line, unknown[0]).or(source_line),
                label,
                format!(
                    "unknown source {} {} (a source is one of {kinds})",
                    if unknown.len() == 1 { "kind" } else { "kinds" },
                    unknown
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return None;
        }
        let found: Vec<(&str, &Value)> = Source::KINDS
            .iter()
            .filter_map(|k| map.get(*k).map(|v| (*k, v)))
            .collect();
        let (kind, value) = match found.as_slice() {
            [one] => *one,
            [] => {
                self.report(
                    source_line,
                    label,
                    format!("a source needs exactly one of {kinds} (found none)"),
                );
                return None;
            }
            many => {
                let names: Vec<&str> = many.iter().map(|(k, _)| *k).collect();
                let (last, rest) = names.split_last().unwrap_or((&"", &[]));
                self.report(
                    source_line,
                    label,
                    format!(
                        "a source needs exactly one of {kinds} (found {} and {last})",
                        rest.join(", ")
                    ),
                );
                return None;
            }
        };
        let at = self.locator.in_entry(line, kind).or(source_line);
        // Only a literal value may be a number or a boolean (`port: 8080`); the other kinds
        // name something, and a name is text.
        let text = match value {
            Value::String(s) => Some(s.clone()),
            v if kind == "value" => scalar_text(v),
            _ => None,
        };
        let Some(text) = text else {
            let what = if kind == "value" {
                "a string, number or boolean"
            } else {
                "a string"
            };
            // Never quote the value: it may be a secret.
            self.report(
                at,
                label,
                format!("`{kind}` must be {what}, not {}", describe(value)),
            );
            return None;
        };
        if kind != "value" && text.trim().is_empty() {
            self.report(at, label, format!("`{kind}` is empty"));
            return None;
        }
        Source::from_kind(kind, text)
    }
}

/// Text for a scalar (numbers and booleans as written); none for lists, maps and null.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What a value is, without its content (which may be secret).
fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// The storage key's rules for a set name (`min` 1) or a namespace (`min` 0).
pub(crate) fn check_name(name: &str, min: usize) -> Result<(), String> {
    if name.len() < min {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "is {} bytes long; the limit is {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if name.trim() != name {
        return Err("must not start or end with spaces".into());
    }
    Ok(())
}

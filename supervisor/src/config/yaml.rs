//! A YAML tree that remembers where every node was written.
//!
//! `serde_yaml` stops at the first error and figment forgets line numbers, so
//! the config is read in two passes: this module turns `yaml-rust2`'s event
//! stream into a small tree of [`Node`]s carrying their line and column, and
//! `validate` walks that tree collecting every problem at once.
//!
//! What happens here rather than in the validator is what only the YAML layer
//! can see: syntax errors, duplicate keys (the event stream still has both,
//! a loaded map would have silently kept one), anchors and aliases, and merge
//! keys (`<<: *defaults`).
//!
//! Aliases share the aliased subtree through [`Rc`], so a "billion laughs"
//! document costs little memory; but walking it would still take forever, so
//! every node an alias (or a merge) pulls in is counted, and the document is
//! rejected as soon as that count passes [`ALIAS_BUDGET`]. Nodes written out
//! literally are not counted: they cost input bytes, so they are bounded by
//! the file's size. Nesting is capped at [`MAX_DEPTH`] so that dropping or
//! walking the tree can never overflow the stack.
//!
//! Plain (unquoted) scalars are typed by the YAML 1.2 core schema, see
//! [`Scalar::value`]: `yes`/`no`/`on`/`off` are strings, `012` is twelve.

use crate::sys::fnv::Fnv;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::rc::Rc;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// How many nodes aliases and merge keys may pull into a document, in total.
pub const ALIAS_BUDGET: usize = 100_000;

/// How deeply collections may nest. A config needs four levels.
pub const MAX_DEPTH: usize = 64;

/// Where the YAML core schema's tags (`!!str`) live once resolved.
const CORE_TAG_PREFIX: &str = "tag:yaml.org,2002:";

/// A position in the source, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        // yaml-rust2's lines are 1-based but its columns 0-based.
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// One YAML node and where it starts.
#[derive(Debug)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
    /// Nodes in this subtree once aliases are expanded (itself included).
    weight: usize,
}

#[derive(Debug)]
pub enum Kind {
    Scalar(Scalar),
    Seq(Vec<Rc<Node>>),
    /// Entries in document order, duplicates already removed.
    Map(Vec<Entry>),
}

/// One `key: value` of a mapping.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: Rc<Node>,
    pub value: Rc<Node>,
}

/// A scalar as written, plus whether it was plain (only plain scalars get
/// typed; `"42"` is a string).
#[derive(Debug)]
pub struct Scalar {
    pub text: String,
    pub plain: bool,
}

/// A scalar's meaning under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// Wide enough that any integer a config could mean fits; absurdly long
    /// digit strings saturate, which range checks then reject.
    Int(i128),
    Float(f64),
    Str(&'a str),
}

impl Scalar {
    /// Types a plain scalar by the YAML 1.2 core schema; anything quoted or
    /// block-style is a string.
    pub fn value(&self) -> Value<'_> {
        if !self.plain {
            return Value::Str(&self.text);
        }
        let t = self.text.as_str();
        match t {
            "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
            "true" | "True" | "TRUE" => return Value::Bool(true),
            "false" | "False" | "FALSE" => return Value::Bool(false),
            ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
                return Value::Float(f64::INFINITY);
            }
            "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
            _ => {}
        }
        if let Some(i) = parse_int(t) {
            return Value::Int(i);
        }
        if is_float(t)
            && let Ok(f) = t.parse::<f64>()
        {
            return Value::Float(f);
        }
        Value::Str(t)
    }
}

/// Core schema integers: `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`.
fn parse_int(t: &str) -> Option<i128> {
    let (radix, digits, negative) = if let Some(d) = t.strip_prefix("0o") {
        (8, d, false)
    } else if let Some(d) = t.strip_prefix("0x") {
        (16, d, false)
    } else if let Some(d) = t.strip_prefix('-') {
        (10, d, true)
    } else {
        (10, t.strip_prefix('+').unwrap_or(t), false)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).unwrap_or(i128::MAX);
    Some(if negative { -magnitude } else { magnitude })
}

/// Core schema floats: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn is_float(t: &str) -> bool {
    let t = t.strip_prefix(['-', '+']).unwrap_or(t);
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (!int.is_empty() || !frac.is_empty()) && all_digits(int) && all_digits(frac)
        }
        None => !mantissa.is_empty() && all_digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

impl Node {
    pub fn scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The node's core-schema value, `None` for collections.
    pub fn value(&self) -> Option<Value<'_>> {
        self.scalar().map(Scalar::value)
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value(), Some(Value::Null))
    }

    /// What the node is, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Seq(_) => "a list".to_string(),
            Kind::Map(_) => "a mapping".to_string(),
            Kind::Scalar(s) => match s.value() {
                Value::Null => "nothing (null)".to_string(),
                Value::Bool(b) => format!("the boolean {b}"),
                Value::Int(_) => format!("the integer {}", s.text),
                Value::Float(_) => format!("the number {}", s.text),
                Value::Str(text) => format!("the string {}", quote(text)),
            },
        }
    }
}

/// `text` in double quotes, shortened so one bad value cannot flood a report.
pub fn quote(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// Something wrong that the YAML layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeProblem {
    pub pos: Pos,
    /// Dotted key path, as in `Problem::key`.
    pub key: String,
    pub message: String,
}

/// The result of reading a document: its root (absent for an empty file or a
/// fatal error) and whatever went wrong on the way.
#[derive(Debug)]
pub struct Doc {
    pub root: Option<Rc<Node>>,
    pub problems: Vec<TreeProblem>,
}

/// Reads one YAML document into a tree. Never panics on any input; a syntax
/// error, an alias bomb or too deep nesting stop the reading (and leave
/// `root` empty), other problems do not.
pub fn parse(text: &str) -> Doc {
    // yaml-rust2 has `unwrap`s and `unreachable!`s on paths fuzzing has not
    // reached (30,000 mangled configs did not); a config error, not a crash,
    // is the right outcome if one ever is.
    std::panic::catch_unwind(|| parse_unguarded(text)).unwrap_or_else(|_| Doc {
        root: None,
        problems: vec![TreeProblem {
            pos: Pos { line: 1, col: 1 },
            key: String::new(),
            message: "the YAML parser crashed on this file (a bug in yaml-rust2); \
                      please report it with the file"
                .to_string(),
        }],
    })
}

fn parse_unguarded(text: &str) -> Doc {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    // Pull events one by one rather than `Parser::load`, which recurses once
    // per nesting level and asserts on the document structure.
    let fatal = loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(e) => {
                break Some(TreeProblem {
                    pos: Pos::from(*e.marker()),
                    key: builder.path(),
                    message: format!("YAML syntax error: {}", e.info()),
                });
            }
        };
        match builder.event(event, Pos::from(mark)) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Done) => break None,
            Err(problem) => break Some(problem),
        }
    };
    let root = match fatal {
        Some(problem) => {
            builder.problems.push(problem);
            None
        }
        None => builder.root,
    };
    Doc {
        root,
        problems: builder.problems,
    }
}

enum Flow {
    Continue,
    Done,
}

/// A collection still being read.
#[derive(Debug)]
enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Rc<Node>>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<Entry>,
        /// The key whose value is being read.
        key: Option<Rc<Node>>,
        /// What to do with the value of `key`.
        next: ValueFate,
        /// Keys seen so far and their line, to report duplicates.
        seen: KeyMap<String, usize>,
        /// Values of `<<` keys, merged in when the mapping ends.
        merges: Vec<Rc<Node>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueFate {
    Keep,
    /// The key was a duplicate (already reported): drop the value.
    Drop,
    /// The key was `<<`.
    Merge,
}

#[derive(Debug, Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Completed anchored nodes by the parser's anchor id.
    anchors: HashMap<usize, Rc<Node>>,
    /// Nodes pulled in by aliases and merges so far.
    expanded: usize,
    documents: usize,
    root: Option<Rc<Node>>,
    problems: Vec<TreeProblem>,
}

impl Builder {
    fn event(&mut self, event: Event, pos: Pos) -> Result<Flow, TreeProblem> {
        match event {
            Event::StreamEnd => return Ok(Flow::Done),
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(self.fatal(
                        pos,
                        "a config file holds one YAML document; remove this `---` and what follows or merge it into the first",
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let mut plain = style == TScalarStyle::Plain;
                if let Some(tag) = tag {
                    match self.tag(&tag, pos) {
                        // `!!str 42` is the string "42", like `"42"`.
                        TagMeaning::Str => plain = false,
                        TagMeaning::Resolve => {}
                    }
                }
                // An empty value (`key:`) is placed by the parser at the next
                // token, often on the next line; the key is where to look.
                let pos = match self.stack.last() {
                    Some(Frame::Map { key: Some(k), .. }) if plain && text.is_empty() => k.pos,
                    _ => pos,
                };
                let node = Node {
                    pos,
                    kind: Kind::Scalar(Scalar { text, plain }),
                    weight: 1,
                };
                self.add(Rc::new(node), anchor)?;
            }
            Event::SequenceStart(anchor, tag) => {
                if let Some(tag) = tag {
                    self.tag(&tag, pos);
                }
                self.open(Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                })?;
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(tag) = tag {
                    self.tag(&tag, pos);
                }
                self.open(Frame::Map {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                    next: ValueFate::Keep,
                    seen: KeyMap::default(),
                    merges: Vec::new(),
                })?;
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(pos)?,
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id).cloned() else {
                    // The parser rejects unknown anchors itself, so this is an
                    // alias to a collection that is still open.
                    return Err(self.fatal(
                        pos,
                        "this alias refers to a node that contains it; recursive aliases are not allowed",
                    ));
                };
                self.expand(target.weight, pos)?;
                self.add(target, 0)?;
            }
        }
        Ok(Flow::Continue)
    }

    fn open(&mut self, frame: Frame) -> Result<(), TreeProblem> {
        if self.stack.len() >= MAX_DEPTH {
            let pos = match &frame {
                Frame::Seq { pos, .. } | Frame::Map { pos, .. } => *pos,
            };
            return Err(self.fatal(
                pos,
                &format!("nested more than {MAX_DEPTH} levels deep; a config never needs that"),
            ));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn close(&mut self, end: Pos) -> Result<(), TreeProblem> {
        let Some(frame) = self.stack.pop() else {
            return Err(self.fatal(end, "unbalanced end of collection"));
        };
        let (pos, anchor, kind) = match frame {
            Frame::Seq { pos, anchor, items } => (pos, anchor, Kind::Seq(items)),
            Frame::Map {
                pos,
                anchor,
                mut entries,
                mut seen,
                merges,
                ..
            } => {
                // Keys written in the mapping win over merged ones, and
                // earlier merge sources over later ones (YAML 1.1 merge keys).
                let mut merged = Vec::new();
                for source in merges {
                    let sources: Vec<Rc<Node>> = match &source.kind {
                        Kind::Map(_) => vec![source.clone()],
                        Kind::Seq(items) => items.clone(),
                        Kind::Scalar(_) => vec![source.clone()],
                    };
                    for s in sources {
                        let Kind::Map(source_entries) = &s.kind else {
                            self.problems.push(TreeProblem {
                                pos: s.pos,
                                key: self.path_with("<<"),
                                message: format!(
                                    "a merge key `<<` takes a mapping (`<<: *defaults`) or a list of them, found {}",
                                    s.describe()
                                ),
                            });
                            continue;
                        };
                        for entry in source_entries {
                            let Some(text) = entry.key.scalar().map(|k| k.text.clone()) else {
                                continue;
                            };
                            if seen.contains_key(&text) {
                                continue;
                            }
                            seen.insert(text, entry.key.pos.line);
                            self.expand(
                                entry.key.weight.saturating_add(entry.value.weight),
                                entry.key.pos,
                            )?;
                            merged.push(entry.clone());
                        }
                    }
                }
                entries.extend(merged);
                (pos, anchor, Kind::Map(entries))
            }
        };
        let weight = match &kind {
            Kind::Scalar(_) => 1,
            Kind::Seq(items) => items.iter().fold(1usize, |w, n| w.saturating_add(n.weight)),
            Kind::Map(entries) => entries.iter().fold(1usize, |w, e| {
                w.saturating_add(e.key.weight)
                    .saturating_add(e.value.weight)
            }),
        };
        self.add(Rc::new(Node { pos, kind, weight }), anchor)
    }

    /// Counts `weight` more nodes pulled in by an alias or merge.
    fn expand(&mut self, weight: usize, pos: Pos) -> Result<(), TreeProblem> {
        self.expanded = self.expanded.saturating_add(weight);
        if self.expanded > ALIAS_BUDGET {
            return Err(self.fatal(
                pos,
                &format!(
                    "aliases expand to more than {ALIAS_BUDGET} nodes (an \"alias bomb\"?); refusing to read further"
                ),
            ));
        }
        Ok(())
    }

    /// Hands a finished node to the collection being read (or makes it the
    /// root), registering its anchor first.
    fn add(&mut self, node: Rc<Node>, anchor: usize) -> Result<(), TreeProblem> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let path_if_duplicate = match self.stack.last() {
            Some(Frame::Map {
                key: None, seen, ..
            }) => node
                .scalar()
                .and_then(|k| seen.get(&k.text).map(|line| (k.text.clone(), *line))),
            _ => None,
        };
        if let Some((text, first_line)) = &path_if_duplicate {
            let problem = TreeProblem {
                pos: node.pos,
                key: self.path_with(text),
                message: format!(
                    "duplicate key `{text}` (first defined on line {first_line}); remove one of them"
                ),
            };
            self.problems.push(problem);
        }
        let Some(frame) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        match frame {
            Frame::Seq { items, .. } => items.push(node),
            Frame::Map {
                entries,
                key,
                next,
                seen,
                merges,
                ..
            } => match key.take() {
                None => {
                    *next = if path_if_duplicate.is_some() {
                        ValueFate::Drop
                    } else {
                        match node.scalar() {
                            Some(k) if k.plain && k.text == "<<" => ValueFate::Merge,
                            Some(k) => {
                                seen.insert(k.text.clone(), node.pos.line);
                                ValueFate::Keep
                            }
                            // Collection keys are kept; the validator reports
                            // them where it knows what key was expected.
                            None => ValueFate::Keep,
                        }
                    };
                    *key = Some(node);
                }
                Some(k) => match next {
                    ValueFate::Keep => entries.push(Entry {
                        key: k,
                        value: node,
                    }),
                    ValueFate::Drop => {}
                    ValueFate::Merge => merges.push(node),
                },
            },
        }
        Ok(())
    }

    /// Judges a tag: `!!str` makes a string; other core tags change nothing;
    /// anything else is reported (and ignored).
    fn tag(&mut self, tag: &Tag, pos: Pos) -> TagMeaning {
        if tag.handle == CORE_TAG_PREFIX {
            match tag.suffix.as_str() {
                "str" => return TagMeaning::Str,
                "int" | "float" | "bool" | "null" | "map" | "seq" => {
                    return TagMeaning::Resolve;
                }
                _ => {}
            }
        }
        let problem = TreeProblem {
            pos,
            key: self.path(),
            message: format!(
                "unsupported YAML tag `{}{}`; only the core tags such as `!!str` are understood",
                tag.handle, tag.suffix
            ),
        };
        self.problems.push(problem);
        TagMeaning::Resolve
    }

    fn fatal(&self, pos: Pos, message: &str) -> TreeProblem {
        TreeProblem {
            pos,
            key: self.path(),
            message: message.to_string(),
        }
    }

    /// Dotted path of the node being read, e.g. `programs.web.exitcodes[1]`.
    fn path(&self) -> String {
        let mut path = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Seq { items, .. } => path.push_str(&format!("[{}]", items.len())),
                Frame::Map { key, .. } => {
                    let text = key
                        .as_ref()
                        .and_then(|k| k.scalar())
                        .map_or("?", |s| s.text.as_str());
                    if key.is_none() {
                        // Reading a key, not a value: the map itself is the place.
                        continue;
                    }
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(text);
                }
            }
        }
        path
    }

    fn path_with(&self, key: &str) -> String {
        let path = self.path();
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    }
}

/// Keys hashed with FNV-1a (see [`crate::sys::fnv`]).
type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

enum TagMeaning {
    Str,
    Resolve,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn root(text: &str) -> Rc<Node> {
        let doc = parse(text);
        assert!(doc.problems.is_empty(), "{:?}", doc.problems);
        doc.root.unwrap_or_else(|| panic!("no root for {text:?}"))
    }

    fn scalar_value(text: &str) -> String {
        let node = root(&format!("k: {text}"));
        let Kind::Map(entries) = &node.kind else {
            panic!("not a map");
        };
        format!("{:?}", entries[0].value.value())
    }

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        assert_eq!(scalar_value("true"), "Some(Bool(true))");
        assert_eq!(scalar_value("TRUE"), "Some(Bool(true))");
        assert_eq!(scalar_value("False"), "Some(Bool(false))");
        assert_eq!(scalar_value("yes"), "Some(Str(\"yes\"))");
        assert_eq!(scalar_value("no"), "Some(Str(\"no\"))");
        assert_eq!(scalar_value("~"), "Some(Null)");
        assert_eq!(scalar_value("null"), "Some(Null)");
        assert_eq!(scalar_value(""), "Some(Null)");
        assert_eq!(scalar_value("42"), "Some(Int(42))");
        assert_eq!(scalar_value("-7"), "Some(Int(-7))");
        assert_eq!(scalar_value("012"), "Some(Int(12))");
        assert_eq!(scalar_value("0o17"), "Some(Int(15))");
        assert_eq!(scalar_value("0x1f"), "Some(Int(31))");
        assert_eq!(scalar_value("1.5"), "Some(Float(1.5))");
        assert_eq!(scalar_value("1e3"), "Some(Float(1000.0))");
        assert_eq!(scalar_value(".5"), "Some(Float(0.5))");
        assert_eq!(scalar_value("-.inf"), "Some(Float(-inf))");
        assert_eq!(scalar_value(".nan"), "Some(Float(NaN))");
        assert_eq!(scalar_value("1.2.3"), "Some(Str(\"1.2.3\"))");
        assert_eq!(scalar_value("0x"), "Some(Str(\"0x\"))");
        assert_eq!(scalar_value("\"42\""), "Some(Str(\"42\"))");
        assert_eq!(scalar_value("'true'"), "Some(Str(\"true\"))");
        assert_eq!(scalar_value("!!str 42"), "Some(Str(\"42\"))");
        assert_eq!(
            scalar_value("99999999999999999999999999999999999999999999"),
            format!("Some(Int({}))", i128::MAX)
        );
    }

    #[test]
    fn positions_are_one_based() {
        let node = root("a: 1\nbb:\n  c: x\n");
        let Kind::Map(entries) = &node.kind else {
            panic!("not a map");
        };
        assert_eq!(entries[1].key.pos, Pos { line: 2, col: 1 });
        let Kind::Map(inner) = &entries[1].value.kind else {
            panic!("not a map");
        };
        assert_eq!(inner[0].value.pos, Pos { line: 3, col: 6 });
    }

    #[test]
    fn duplicate_keys_are_reported_with_their_path_and_the_first_is_kept() {
        let doc = parse("a:\n  b: 1\n  b: 2\n");
        assert_eq!(doc.problems.len(), 1, "{:?}", doc.problems);
        assert_eq!(doc.problems[0].pos, Pos { line: 3, col: 3 });
        assert_eq!(doc.problems[0].key, "a.b");
        assert!(doc.problems[0].message.contains("line 2"));
        let root = doc.root.unwrap_or_else(|| panic!("no root"));
        let Kind::Map(top) = &root.kind else {
            panic!("not a map")
        };
        let Kind::Map(inner) = &top[0].value.kind else {
            panic!("not a map")
        };
        assert_eq!(inner.len(), 1);
        assert_eq!(inner[0].value.value(), Some(Value::Int(1)));
    }

    #[test]
    fn merge_keys_fill_in_missing_keys_only() {
        let node = root("d: &d {x: 1, y: 2}\ne:\n  <<: *d\n  y: 3\n");
        let Kind::Map(top) = &node.kind else {
            panic!("not a map")
        };
        let Kind::Map(e) = &top[1].value.kind else {
            panic!("not a map")
        };
        let pairs: Vec<(String, Option<Value<'_>>)> = e
            .iter()
            .map(|en| {
                (
                    en.key.scalar().map(|s| s.text.clone()).unwrap_or_default(),
                    en.value.value(),
                )
            })
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("y".to_string(), Some(Value::Int(3))),
                ("x".to_string(), Some(Value::Int(1)))
            ]
        );
    }

    #[test]
    fn syntax_errors_are_one_fatal_problem_with_a_position() {
        let doc = parse("a: [1, 2\nb: 3\n");
        assert!(doc.root.is_none());
        assert_eq!(doc.problems.len(), 1);
        assert!(doc.problems[0].message.starts_with("YAML syntax error"));
        assert!(doc.problems[0].pos.line >= 1);
    }

    #[test]
    fn the_billion_laughs_bomb_is_rejected_fast() {
        let bomb = r#"
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"#;
        let start = Instant::now();
        let doc = parse(bomb);
        let took = start.elapsed();
        assert!(doc.root.is_none());
        assert_eq!(doc.problems.len(), 1, "{:?}", doc.problems);
        assert!(doc.problems[0].message.contains("alias bomb"));
        assert_eq!(doc.problems[0].pos.line, 7, "{:?}", doc.problems[0]);
        assert!(took < Duration::from_millis(200), "took {took:?}");
    }

    #[test]
    fn a_few_aliases_are_fine_and_shared() {
        let node = root("a: &a [1, 2]\nb: *a\n");
        let Kind::Map(top) = &node.kind else {
            panic!("not a map")
        };
        assert!(Rc::ptr_eq(&top[0].value, &top[1].value));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let doc = parse(&text);
        assert!(doc.root.is_none());
        assert!(
            doc.problems[0].message.contains("nested more than"),
            "{:?}",
            doc.problems
        );
        // Block nesting has no limit in the scanner; ours applies.
        let doc = parse(&format!("{}x", "- ".repeat(50_000)));
        assert!(doc.root.is_none());
        assert!(doc.problems[0].message.contains("nested more than"));
    }

    #[test]
    fn a_second_document_is_refused() {
        let doc = parse("a: 1\n---\nb: 2\n");
        assert!(doc.root.is_none());
        assert_eq!(doc.problems[0].pos.line, 2);
    }

    #[test]
    fn unknown_tags_are_reported() {
        let doc = parse("a: !foo 1\n");
        assert_eq!(doc.problems.len(), 1);
        assert_eq!(doc.problems[0].key, "a");
    }
}

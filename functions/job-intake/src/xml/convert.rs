//! S3 Control's REST-XML bodies to and from the JSON the API's handlers speak, shape by shape
//! as the model says: a request's XML becomes the JSON that `aws s3control --cli-input-json`
//! takes, and an answer's JSON becomes the XML S3 Control answers with.

use batchops_core::Error;
use roxmltree::{Node, ParsingOptions};
use serde_json::{Map, Number, Value};

use super::model::{element_name, item_name, Model, Shape, ShapeType, NAMESPACE};

/// Deepest nesting a request may have (CreateJob's deepest member is 7 levels down).
pub const MAX_DEPTH: usize = 32;

/// The JSON of an XML request body whose root is `root` (the operation's `locationName`) and
/// whose content is `shape`. Errors name the member, as the JSON API's do.
pub fn request_json(model: &Model, root: &str, shape: &str, body: &str) -> Result<Value, Error> {
    check_nesting(body)?;
    // No DTD: nothing in S3 Control's protocol uses one, and entities are an attack surface.
    let opts = ParsingOptions { allow_dtd: false, nodes_limit: 100_000 };
    let doc = roxmltree::Document::parse_with_options(body, opts)
        .map_err(|e| Error::InvalidBody { message: format!("the request body is not XML: {e}") })?;
    let el = doc.root_element();
    if el.tag_name().name() != root {
        return Err(Error::InvalidBody {
            message: format!("the request body's root element is <{}>, not <{root}>", el.tag_name().name()),
        });
    }
    if let Some(ns) = el.tag_name().namespace().filter(|ns| *ns != NAMESPACE) {
        return Err(Error::InvalidBody { message: format!("<{root}> is in namespace '{ns}', not '{NAMESPACE}'") });
    }
    Decoder { model }.value(shape, el, "", 0)
}

/// Refuses a body whose elements nest deeper than the root and [`MAX_DEPTH`] levels under it,
/// before roxmltree reads it: roxmltree's tokenizer recurses once per level, so a 28 KB body of
/// 4,000 nested elements overflowed a 2 MB worker stack and aborted the process. This scan is a
/// loop and never counts fewer levels than roxmltree would descend: every `<` outside a
/// comment, CDATA section or processing instruction opens one unless it is `</` or its tag ends
/// in `/>` (XML allows no raw `<` in text or attribute values, so a `<` there is one more level
/// here and an error where roxmltree stops).
fn check_nesting(body: &str) -> Result<(), Error> {
    let b = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'<') {
        let at = i + off;
        let rest = &b[at..];
        // Comments, CDATA sections and processing instructions hold no level: skipped whole.
        let skipped = [(&b"<!--"[..], &b"-->"[..]), (b"<![CDATA[", b"]]>"), (b"<?", b"?>")]
            .into_iter()
            .find(|(open, _)| rest.starts_with(open))
            .map(|(open, close)| find(&rest[open.len()..], close).map(|end| at + open.len() + end + close.len()));
        i = if let Some(next) = skipped {
            match next {
                Some(next) => next,
                None => return Ok(()), // unterminated: roxmltree stops there
            }
        } else if rest.starts_with(b"<!") {
            return Err(Error::InvalidBody {
                message: format!(
                    "the request body is not XML S3 Control sends: a declaration (DTD) at {}",
                    position(b, at)
                ),
            });
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            at + 2
        } else {
            depth += 1;
            if depth > MAX_DEPTH + 1 {
                return Err(Error::InvalidBody {
                    message: format!("the request body nests deeper than {MAX_DEPTH} elements at {}", position(b, at)),
                });
            }
            let (next, empty) = tag_end(b, at + 1);
            depth -= usize::from(empty);
            next
        };
    }
    Ok(())
}

/// Where the tag begun before `from` ends (just past its `>`), and whether it is empty (`/>`).
/// A `<` first ends the scan of the tag there: the caller counts it as a level of its own.
fn tag_end(b: &[u8], from: usize) -> (usize, bool) {
    let mut quote = None;
    for (i, &c) in b.iter().enumerate().skip(from) {
        match c {
            b'<' => return (i, false),
            b'"' | b'\'' if quote == Some(c) => quote = None,
            b'"' | b'\'' if quote.is_none() => quote = Some(c),
            b'>' if quote.is_none() => return (i + 1, b[i - 1] == b'/'),
            _ => {}
        }
    }
    (b.len(), false)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `line L, column C` of byte `at` (both from 1, the column in bytes), as roxmltree says it.
fn position(b: &[u8], at: usize) -> String {
    let line = 1 + b[..at].iter().filter(|&&c| c == b'\n').count();
    let column = 1 + at - b[..at].iter().rposition(|&c| c == b'\n').map_or(0, |nl| nl + 1);
    format!("line {line}, column {column}")
}

struct Decoder<'m> {
    model: &'m Model,
}

/// `parent.member` (or `member` at the top).
fn join(parent: &str, member: &str) -> String {
    if parent.is_empty() {
        member.to_string()
    } else {
        format!("{parent}.{member}")
    }
}

fn children<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(Node::is_element)
}

impl Decoder<'_> {
    fn shape(&self, name: &str) -> Result<&Shape, Error> {
        self.model.shape(name).ok_or_else(|| Error::permanent("S3 Control model", format!("no shape {name}")))
    }

    /// `node` read as `shape`; `path` names it in errors.
    fn value(&self, shape: &str, node: Node, path: &str, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::field(path, format!("nests deeper than {MAX_DEPTH} elements")));
        }
        let s = self.shape(shape)?;
        match s.kind {
            ShapeType::Structure => self.structure(shape, s, node, path, depth),
            ShapeType::List => {
                let item = s.member.as_ref().map_or("", |m| m.shape.as_str());
                let name = item_name(s);
                let mut out = Vec::new();
                for (i, child) in children(node).enumerate() {
                    let at = format!("{path}[{i}]");
                    if child.tag_name().name() != name {
                        return Err(Error::field(at, format!("is <{}>, not <{name}>", child.tag_name().name())));
                    }
                    out.push(self.value(item, child, &at, depth + 1)?);
                }
                Ok(Value::Array(out))
            }
            ShapeType::Map => self.map(s, node, path, depth),
            _ => scalar(s.kind, &text(node), path),
        }
    }

    fn structure(&self, name: &str, s: &Shape, node: Node, path: &str, depth: usize) -> Result<Value, Error> {
        let mut out = Map::new();
        for child in children(node) {
            let el = child.tag_name().name();
            let Some((member, r)) = s.member_by_element(el) else {
                return Err(Error::field(join(path, el), format!("is not a member of {name}")));
            };
            let at = join(path, member);
            if out.contains_key(member) {
                return Err(Error::field(at, "is given twice"));
            }
            let v = self.value(&r.shape, child, &at, depth + 1)?;
            out.insert(member.to_string(), v);
        }
        Ok(Value::Object(out))
    }

    /// `<entry><key>..</key><value>..</value></entry>` items (rest-xml's map layout).
    fn map(&self, s: &Shape, node: Node, path: &str, depth: usize) -> Result<Value, Error> {
        let key_name = s.key.as_ref().and_then(|k| k.location_name.as_deref()).unwrap_or("key");
        let value_name = s.value.as_ref().and_then(|v| v.location_name.as_deref()).unwrap_or("value");
        let value_shape = s.value.as_ref().map_or("", |v| v.shape.as_str());
        let mut out = Map::new();
        for (i, entry) in children(node).enumerate() {
            let at = format!("{path}[{i}]");
            let part = |name: &str| children(entry).find(|c| c.tag_name().name() == name);
            let (Some(k), Some(v)) = (part(key_name), part(value_name)) else {
                return Err(Error::field(at, format!("an <entry> needs a <{key_name}> and a <{value_name}>")));
            };
            let key = text(k);
            let value = self.value(value_shape, v, &join(path, &key), depth + 1)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

fn text(node: Node) -> String {
    node.children().filter(Node::is_text).filter_map(|t| t.text()).collect()
}

fn scalar(kind: ShapeType, text: &str, path: &str) -> Result<Value, Error> {
    // The value is quoted at most 100 characters long: an error does not echo a megabyte back.
    let bad = |what: &str| Error::field(path, format!("'{text:.100}' is not {what}"));
    Ok(match kind {
        ShapeType::Boolean => match text.trim() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad("true or false")),
        },
        ShapeType::Integer | ShapeType::Long => {
            Value::Number(text.trim().parse::<i64>().map_err(|_| bad("an integer"))?.into())
        }
        ShapeType::Float | ShapeType::Double => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| bad("a number"))?,
        // Strings, enums, blobs (base64) and timestamps (ISO 8601, or batchops' relative
        // "-P1D") stay text: the spec's parser reads them as it reads the JSON's.
        _ => Value::String(text.to_string()),
    })
}

/// The XML answer of `shape` (the root element, in S3 Control's namespace) for `json`.
pub fn response_xml(model: &Model, shape: &str, json: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!("<{shape} xmlns=\"{NAMESPACE}\">"));
    Encoder { model, out: &mut out }.content(Some(shape), json);
    out.push_str(&format!("</{shape}>"));
    out
}

/// The error document S3 Control answers with (its SDKs read `Error/Code` and `Error/Message`).
pub fn error_xml(code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        escape(code),
        escape(message),
        escape(request_id)
    )
}

struct Encoder<'a> {
    model: &'a Model,
    out: &'a mut String,
}

impl Encoder<'_> {
    /// `<name>` holding `v` as `shape` (its JSON form when the model has no shape for it).
    fn element(&mut self, name: &str, shape: Option<&str>, v: &Value) {
        if v.is_null() {
            return;
        }
        let s = shape.and_then(|s| self.model.shape(s));
        if let (Some(list), Value::Array(items)) = (s, v) {
            if list.kind == ShapeType::List && list.flattened {
                for item in items {
                    self.element(name, list.member.as_ref().map(|m| m.shape.as_str()), item);
                }
                return;
            }
        }
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self.content(shape, v);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    fn content(&mut self, shape: Option<&str>, v: &Value) {
        let s = shape.and_then(|s| self.model.shape(s));
        if let (Some(map), Value::Object(entries)) = (s.filter(|s| s.kind == ShapeType::Map), v) {
            return self.map(map, entries);
        }
        match v {
            Value::Object(fields) => {
                for (k, item) in fields {
                    match s.and_then(|s| s.members.get(k)) {
                        Some(r) if !r.in_body() => {}
                        Some(r) => self.element(element_name(k, r), Some(&r.shape), item),
                        None => self.element(k, None, item),
                    }
                }
            }
            Value::Array(items) => {
                let name = s.map_or("member", item_name);
                let item_shape = s.and_then(|s| s.member.as_ref()).map(|m| m.shape.as_str());
                for item in items {
                    self.element(name, item_shape, item);
                }
            }
            Value::String(text) => self.out.push_str(&escape(text)),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => self.out.push_str(&n.to_string()),
            Value::Null => {}
        }
    }

    /// rest-xml's map layout: `<entry><key>..</key><value>..</value></entry>`.
    fn map(&mut self, map: &Shape, entries: &Map<String, Value>) {
        let value_shape = map.value.as_ref().map(|r| r.shape.as_str());
        for (k, item) in entries {
            self.out.push_str("<entry><key>");
            self.out.push_str(&escape(k));
            self.out.push_str("</key>");
            self.element("value", value_shape, item);
            self.out.push_str("</entry>");
        }
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Line breaks and tabs as references, so a parser hands them back unchanged.
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            '\t' => out.push_str("&#x9;"),
            // Other control characters cannot appear in XML 1.0, not even as references.
            c if c.is_control() && (c as u32) < 0x20 => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

//! CSV manifests (`S3BatchOperations_CSV_20180820`): one object per line, no header row,
//! columns as `Manifest.Spec.Fields` says, keys URL-encoded (form style: `+` is a space).
//!
//! A line that cannot be read is not a failed job: it becomes a failed task whose message
//! names the line, so one bad row costs one report row.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use crate::ops::TaskTarget;
use crate::spec::ManifestField;

/// One manifest line, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// 1-based line number in the manifest object.
    pub line: u64,
    pub target: TaskTarget,
    /// The key exactly as the manifest spells it (URL-encoded); the report repeats it so a
    /// failed-tasks file is itself a manifest.
    pub encoded_key: String,
}

/// A line that cannot become a task; it still gets exactly one (failed) report row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub line: u64,
    /// The raw bucket and key columns, as far as they could be read, for the report row.
    pub bucket: String,
    pub encoded_key: String,
    pub version_id: String,
    pub reason: String,
}

/// What a line of the manifest turns into.
pub type ParsedLine = Result<ManifestEntry, BadLine>;

/// Splits one CSV record (RFC 4180 quoting, no embedded line breaks) into its columns.
pub(crate) fn split_csv(line: &str) -> Result<Vec<Cow<'_, str>>, String> {
    Fields { line, at: 0, done: false }.collect()
}

/// The columns of one CSV record, one at a time, each borrowed unless it has a doubled quote
/// (nearly never): reading a row allocates nothing.
struct Fields<'a> {
    line: &'a str,
    /// Where the next field starts.
    at: usize,
    done: bool,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Cow<'a, str>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let (line, b, i) = (self.line, self.line.as_bytes(), self.at);
        let n = b.len();
        let (field, end) = if i < n && b[i] == b'"' {
            // A quoted field: up to the quote that is not doubled.
            let start = i + 1;
            let mut j = start;
            let mut doubled = false;
            loop {
                match memchr::memchr(b'"', &b[j..]) {
                    None => {
                        self.done = true;
                        return Some(Err("unterminated quoted field".into()));
                    }
                    Some(q) if b.get(j + q + 1) == Some(&b'"') => {
                        doubled = true;
                        j += q + 2;
                    }
                    Some(q) => {
                        j += q;
                        break;
                    }
                }
            }
            let raw = &line[start..j];
            let mut field = if doubled { Cow::Owned(raw.replace("\"\"", "\"")) } else { Cow::Borrowed(raw) };
            // Anything between the closing quote and the next comma belongs to the field.
            let k = match b.get(j + 1) {
                Some(b',') | None => j + 1,
                Some(_) => memchr::memchr(b',', &b[j + 1..]).map_or(n, |c| j + 1 + c),
            };
            if k > j + 1 {
                field = Cow::Owned(format!("{field}{}", &line[j + 1..k]));
            }
            (field, k)
        } else {
            let k = memchr::memchr(b',', &b[i..]).map_or(n, |c| i + c);
            (Cow::Borrowed(&line[i..k]), k)
        };
        if end >= n {
            self.done = true;
        } else {
            self.at = end + 1;
        }
        Some(Ok(field))
    }
}

/// Decodes a manifest key: `%XX` escapes and `+` for space, and the result must be UTF-8.
pub fn decode_key(encoded: &str) -> Result<String, String> {
    if !encoded.bytes().any(|c| c == b'%' || c == b'+') {
        return Ok(encoded.to_string());
    }
    let b = encoded.as_bytes();
    for (i, _) in encoded.match_indices('%') {
        let hex = |j: usize| b.get(j).is_some_and(|c| c.is_ascii_hexdigit());
        if !(hex(i + 1) && hex(i + 2)) {
            return Err(format!("key '{encoded}' is not URL-encoded: '%' at byte {i} does not start a %XX escape"));
        }
    }
    let plus_as_space = encoded.replace('+', " ");
    percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| format!("key '{encoded}' does not URL-decode to UTF-8"))
}

/// Encodes a key the way manifests carry it (the inverse of [`decode_key`]): everything but
/// unreserved characters and `/` is escaped, spaces become `+`.
pub fn encode_key(key: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/')
        .remove(b' ');
    percent_encoding::utf8_percent_encode(key, SET).to_string().replace(' ', "+")
}

/// Reads one line (without its line terminator) of a CSV manifest.
pub fn parse_line(fields: &[ManifestField], line_no: u64, raw: &[u8]) -> ParsedLine {
    parse_row("manifest", fields, line_no, raw)
}

/// Reads one line of `origin` (`manifest`, `inventory file <key>`), whose errors name it.
pub fn parse_row(origin: &str, fields: &[ManifestField], line_no: u64, raw: &[u8]) -> ParsedLine {
    RowLayout::new(fields).parse(origin, line_no, raw)
}

/// A well-formed manifest row, borrowed from its line: what a chunk message carries. Its key
/// is known to URL-decode.
#[derive(Debug, PartialEq, Eq)]
pub struct RowRef<'a> {
    pub line: u64,
    pub bucket: Cow<'a, str>,
    pub encoded_key: Cow<'a, str>,
    pub version_id: Option<Cow<'a, str>>,
    /// The key, when reading the row had to decode it (it has `%` escapes).
    pub decoded: Option<String>,
}

impl RowRef<'_> {
    fn bad(&self, origin: &str, reason: String) -> BadLine {
        BadLine {
            line: self.line,
            bucket: self.bucket.to_string(),
            encoded_key: self.encoded_key.to_string(),
            version_id: self.version_id.as_deref().unwrap_or_default().to_string(),
            reason: format!("{origin} line {}: {reason}", self.line),
        }
    }
}

/// How many CSV fields `rest` holds (at least one), as [`Fields`] reads them, without
/// building them. An inventory's columns are all quoted (`"1024","2024-01-01T00:00:00.000Z"`):
/// when every quote of `rest` is one of the delimiters of such fields, the quotes alone say
/// how many there are (one vectorized search); anything else is read by [`Fields`].
fn count_fields(rest: &str) -> Result<usize, String> {
    let b = rest.as_bytes();
    let mut quotes = memchr::memchr_iter(b'"', b);
    let mut fields = 0;
    let mut expect = 0;
    let all_quoted = loop {
        // Each field: an opening quote where it starts, a closing quote that ends `rest` or
        // is followed by `,"`.
        match quotes.next() {
            None => break fields > 0 && expect == b.len() + 1,
            Some(open) if open == expect => {}
            Some(_) => break false,
        }
        let Some(close) = quotes.next() else { break false };
        fields += 1;
        expect = close + 2;
        if close + 1 < b.len() && b[close + 1] != b',' {
            break false;
        }
    };
    if all_quoted {
        return Ok(fields);
    }
    Fields { line: rest, at: 0, done: false }.try_fold(0, |n, f| f.map(|_| n + 1))
}

/// Checks that `encoded` URL-decodes to UTF-8: the decoded key when it has escapes (without
/// building it when it has none).
fn decodes(encoded: &str) -> Result<Option<String>, String> {
    if memchr::memchr(b'%', encoded.as_bytes()).is_some() {
        decode_key(encoded).map(Some)
    } else {
        Ok(None)
    }
}

/// Finds one byte, in short haystacks, millions of times: memchr's AVX2 searcher called
/// directly when the CPU has it (`memchr::memchr` picks a searcher on every call).
#[derive(Clone, Copy, Debug)]
pub struct ByteFinder {
    byte: u8,
    #[cfg(target_arch = "x86_64")]
    avx2: Option<memchr::arch::x86_64::avx2::memchr::One>,
}

impl ByteFinder {
    pub fn new(byte: u8) -> Self {
        ByteFinder {
            byte,
            #[cfg(target_arch = "x86_64")]
            avx2: memchr::arch::x86_64::avx2::memchr::One::new(byte),
        }
    }

    /// The first position of the byte in `haystack`.
    #[inline]
    pub fn find(&self, haystack: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(one) = &self.avx2 {
            return one.find(haystack);
        }
        memchr::memchr(self.byte, haystack)
    }
}

/// Where the columns a task needs are in a manifest's rows: worked out once per manifest or
/// inventory file rather than for each of its millions of rows.
#[derive(Clone, Copy, Debug)]
pub struct RowLayout<'f> {
    fields: &'f [ManifestField],
    bucket: Option<usize>,
    key: Option<usize>,
    version: Option<usize>,
    /// The last column wanted: the ones after it are only counted.
    last_wanted: usize,
    /// Whether a row may end after the last column wanted (see [`Self::prefixes`]).
    prefix: bool,
    quotes: ByteFinder,
}

impl<'f> RowLayout<'f> {
    pub fn new(fields: &'f [ManifestField]) -> Self {
        let pos = |f: ManifestField| fields.iter().position(|x| *x == f);
        let (bucket, key, version) =
            (pos(ManifestField::Bucket), pos(ManifestField::Key), pos(ManifestField::VersionId));
        let last_wanted = [bucket, key, version].into_iter().flatten().max().unwrap_or(0);
        RowLayout { fields, bucket, key, version, last_wanted, prefix: false, quotes: ByteFinder::new(b'"') }
    }

    /// The same layout, also reading rows that end after the last column wanted: the chunker
    /// hands on an inventory's rows cut there ([`Self::prefix_end`]), the columns after it
    /// being of no use to a task.
    pub fn prefixes(self) -> Self {
        RowLayout { prefix: true, ..self }
    }

    /// Whether a row of `columns` columns has the ones this layout reads.
    fn complete(&self, columns: usize) -> bool {
        columns == self.fields.len() || (self.prefix && columns == self.last_wanted + 1)
    }

    /// Where the last column wanted of a plain quoted line (see [`Self::quoted`]) ends: the
    /// byte after its closing quote. `None` for any other line.
    pub fn prefix_end(&self, text: &str) -> Option<usize> {
        self.scan(text, self.last_wanted).map(|(_, _, end)| end)
    }

    /// [`parse_row`]: the line read, with its key decoded.
    pub fn parse(&self, origin: &str, line_no: u64, raw: &[u8]) -> ParsedLine {
        let row = self.read_bytes(origin, line_no, raw)?;
        // A key with escapes was decoded when the row was read; one without cannot fail.
        let key = match row.decoded {
            Some(k) => k,
            None => decode_key(&row.encoded_key).map_err(|e| row.bad(origin, e))?,
        };
        Ok(ManifestEntry {
            line: line_no,
            target: TaskTarget {
                bucket: row.bucket.into_owned(),
                key,
                version_id: row.version_id.map(Cow::into_owned),
            },
            encoded_key: row.encoded_key.into_owned(),
        })
    }

    /// Reads one line of `origin` without copying it ([`Self::parse`] without the decoded
    /// key): a line that is not UTF-8 fails.
    pub fn read_bytes<'a>(&self, origin: &str, line_no: u64, raw: &'a [u8]) -> Result<RowRef<'a>, BadLine> {
        match std::str::from_utf8(raw) {
            Ok(text) => self.read(origin, line_no, text),
            Err(_) => Err(BadLine {
                line: line_no,
                bucket: String::new(),
                encoded_key: String::new(),
                version_id: String::new(),
                reason: format!("{origin} line {line_no}: is not UTF-8"),
            }),
        }
    }

    /// Reads one line of `origin`, known to be UTF-8, without copying it.
    pub fn read<'a>(&self, origin: &str, line_no: u64, text: &'a str) -> Result<RowRef<'a>, BadLine> {
        let text = text.strip_suffix('\r').unwrap_or(text);
        let text = if line_no == 1 { text.strip_prefix('\u{feff}').unwrap_or(text) } else { text };
        let row = match self.scan(text, usize::MAX) {
            Some((columns, [bucket, key, version], _)) if self.complete(columns) => {
                (Cow::Borrowed(bucket), Cow::Borrowed(key), Cow::Borrowed(version))
            }
            _ => self.general(origin, line_no, text)?,
        };
        checked(origin, line_no, row, self.version.is_some())
    }

    /// The bucket, key and version columns of a line whose every column is quoted and holds no
    /// quote, as an S3 Inventory's are (its keys are URL-encoded), with how many columns it
    /// has and where the last one read ends: one search per quote, nothing copied. Reads up to
    /// column `stop` (0-based), or all. `None` for any other line: [`Self::general`] reads
    /// those.
    fn scan<'a>(&self, text: &'a str, stop: usize) -> Option<(usize, [&'a str; 3], usize)> {
        let b = text.as_bytes();
        if b.first() != Some(&b'"') {
            return None;
        }
        let mut out = [""; 3];
        let (mut open, mut column) = (0, 0);
        loop {
            let close = open + 1 + self.quotes.find(&b[open + 1..])?;
            let field = &text[open + 1..close];
            if Some(column) == self.bucket {
                out[0] = field;
            } else if Some(column) == self.key {
                out[1] = field;
            } else if Some(column) == self.version {
                out[2] = field;
            }
            column += 1;
            match (b.get(close + 1), b.get(close + 2)) {
                (None, _) => return Some((column, out, close + 1)),
                (Some(b','), _) if column > stop => return Some((column, out, close + 1)),
                (Some(b','), Some(b'"')) => open = close + 2,
                // a doubled quote, an unquoted column, text after a closing quote
                _ => return None,
            }
        }
    }

    /// [`Self::read`] without its fast path: what it must agree with.
    #[cfg(test)]
    pub(crate) fn read_general<'a>(&self, origin: &str, line_no: u64, text: &'a str) -> Result<RowRef<'a>, BadLine> {
        checked(origin, line_no, self.general(origin, line_no, text)?, self.version.is_some())
    }

    /// Any CSV line (RFC 4180 quoting): the bucket, key and version columns, or the line's
    /// failure.
    fn general<'a>(&self, origin: &str, line_no: u64, text: &'a str) -> Result<Columns<'a>, BadLine> {
        let bad = |reason: String| BadLine {
            line: line_no,
            bucket: String::new(),
            encoded_key: text.to_string(),
            version_id: String::new(),
            reason: format!("{origin} line {line_no}: {reason}"),
        };
        let (mut bucket, mut key, mut version) = (Cow::Borrowed(""), Cow::Borrowed(""), Cow::Borrowed(""));
        let mut found = 0;
        let mut it = Fields { line: text, at: 0, done: false };
        while let Some(field) = it.next() {
            let field = field.map_err(bad)?;
            if Some(found) == self.bucket {
                bucket = field;
            } else if Some(found) == self.key {
                key = field;
            } else if Some(found) == self.version {
                version = field;
            }
            found += 1;
            if found > self.last_wanted && !it.done {
                // The columns after the last one wanted (an inventory's size, date, ETag...) are
                // only counted, not read.
                found += count_fields(&text[it.at..]).map_err(bad)?;
                break;
            }
        }
        // Every line has exactly the declared columns: a column `Fields` does not name (a version
        // ID without `VersionId`) fails the line rather than being guessed at.
        if !self.complete(found) {
            let reason =
                format!("expected {} columns ({}), found {found}", self.fields.len(), field_names(self.fields));
            return Err(bad_row(origin, line_no, (&bucket, &key, &version), reason));
        }
        Ok((bucket, key, version))
    }
}

/// A row's bucket, key and version columns, as read.
type Columns<'a> = (Cow<'a, str>, Cow<'a, str>, Cow<'a, str>);

fn bad_row(origin: &str, line_no: u64, (bucket, key, version): (&str, &str, &str), reason: String) -> BadLine {
    BadLine {
        line: line_no,
        bucket: bucket.to_string(),
        encoded_key: key.to_string(),
        version_id: version.to_string(),
        reason: format!("{origin} line {line_no}: {reason}"),
    }
}

/// The row of a line's columns, or why they make no task.
fn checked<'a>(
    origin: &str,
    line_no: u64,
    (bucket, key, version): Columns<'a>,
    declared_version: bool,
) -> Result<RowRef<'a>, BadLine> {
    let bad = |reason: String| bad_row(origin, line_no, (&bucket, &key, &version), reason);
    if bucket.is_empty() {
        return Err(bad("the bucket column is empty".into()));
    }
    if key.is_empty() {
        return Err(bad("the key column is empty".into()));
    }
    let decoded = decodes(&key).map_err(bad)?;
    if declared_version && version.is_empty() {
        return Err(bad("Task failed due to missing VersionId".into()));
    }
    let version_id = (!version.is_empty()).then_some(version);
    Ok(RowRef { line: line_no, bucket, encoded_key: key, version_id, decoded })
}

/// S3 refuses CSV manifests with a header row (its first line names no bucket); so does
/// batchops, rather than guess: the reason, when line 1 of a manifest is such a line.
pub fn header_row(fields: &[ManifestField], first_line: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(first_line.strip_suffix(b"\r").unwrap_or(first_line));
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let cols = split_csv(text).ok()?;
    let cols: Vec<String> = cols.into_iter().map(Cow::into_owned).collect();
    let col = |f: ManifestField| fields.iter().position(|x| *x == f).and_then(|i| cols.get(i));
    let bucket = col(ManifestField::Bucket)?;
    let key = col(ManifestField::Key).map(String::as_str).unwrap_or("");
    // A column name, not a bucket: characters no bucket name has (capitals, spaces, `_`), or
    // the plain `bucket,key`. A merely invalid name (too short) is left to fail its task.
    let named = bucket.chars().any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'))
        || (bucket.eq_ignore_ascii_case("bucket") && key.eq_ignore_ascii_case("key"));
    (named && !bucket.is_empty()).then(|| {
        format!(
            "manifest line 1: '{bucket}' is not a bucket name; CSV manifests have no header row \
             (S3 Batch Operations refuses them too): remove the first line"
        )
    })
}

fn field_names(fields: &[ManifestField]) -> String {
    fields.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join(",")
}

/// Splits a byte buffer into lines, remembering each line's number. A final line without a
/// terminator counts; an empty remainder after the last `\n` does not.
pub fn lines(buf: &[u8], first_line: u64) -> impl Iterator<Item = (u64, &[u8])> {
    let trimmed = buf.strip_suffix(b"\n").unwrap_or(buf);
    let empty = buf.is_empty();
    trimmed.split(|b| *b == b'\n').filter(move |_| !empty).enumerate().map(move |(i, l)| (first_line + i as u64, l))
}

#[cfg(test)]
mod count_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// Counting the columns not read agrees with reading them, on any mix of quotes and
        /// commas (errors included).
        #[test]
        fn counting_fields_agrees_with_reading_them(rest in "[a\",]{0,12}") {
            let read = Fields { line: &rest, at: 0, done: false }.try_fold(0usize, |n, f| f.map(|_| n + 1));
            prop_assert_eq!(count_fields(&rest), read, "{}", rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ManifestField::*;

    fn ok(fields: &[ManifestField], line: &str) -> ManifestEntry {
        parse_line(fields, 7, line.as_bytes()).unwrap()
    }

    fn err(fields: &[ManifestField], line: &str) -> BadLine {
        parse_line(fields, 7, line.as_bytes()).unwrap_err()
    }

    #[test]
    fn keys_are_url_decoded_form_style() {
        let e = ok(&[Bucket, Key], "b1,object%20key+with%2Bplus%23hash%25pct");
        assert_eq!(e.target.key, "object key with+plus#hash%pct");
        assert_eq!(e.encoded_key, "object%20key+with%2Bplus%23hash%25pct");
        assert_eq!(ok(&[Bucket, Key], "b1,caf%C3%A9//x").target.key, "café//x");
        assert_eq!(
            ok(&[Bucket, Key], "b1,photos/jpgs/newjersey/objectkey5").target.key,
            "photos/jpgs/newjersey/objectkey5"
        );
    }

    #[test]
    fn encoding_round_trips_awkward_keys() {
        for k in ["a b", "x+y", "100%", "#frag", "a//b", "ünï/cödé", "q?x=1&y", "\"quoted\",comma"] {
            assert_eq!(decode_key(&encode_key(k)).unwrap(), k);
            assert!(!encode_key(k).contains(','), "{k}");
        }
    }

    #[test]
    fn version_ids_are_optional_and_null_is_kept() {
        assert_eq!(ok(&[Bucket, Key], "b,k").target.version_id, None);
        assert_eq!(ok(&[Bucket, Key, VersionId], "b,k,v1").target.version_id.as_deref(), Some("v1"));
        // a column Fields does not name fails its line instead of being taken as a version
        let e = err(&[Bucket, Key], "b,k,v1");
        assert_eq!(e.reason, "manifest line 7: expected 2 columns (Bucket,Key), found 3");
        assert_eq!(ok(&[Bucket, Key, VersionId], "b,k,null").target.version_id.as_deref(), Some("null"));
        let e = err(&[Bucket, Key, VersionId], "b,k,");
        assert!(e.reason.contains("missing VersionId"), "{}", e.reason);
    }

    #[test]
    fn csv_fields_borrow_unless_quotes_are_doubled() {
        let cols = split_csv(r#""a""b",c,"x"y,,"""#).unwrap();
        assert_eq!(cols, vec!["a\"b", "c", "xy", "", ""]);
        assert!(matches!(cols[1], Cow::Borrowed(_)) && matches!(cols[0], Cow::Owned(_)));
        assert_eq!(split_csv("a,b,").unwrap(), vec!["a", "b", ""]);
        assert!(split_csv("\"open,x").is_err());
    }

    #[test]
    fn ignore_columns_and_quotes() {
        let e = ok(&[Ignore, Key, Bucket], "\"x,y\",\"my key\",bkt");
        assert_eq!((e.target.bucket.as_str(), e.target.key.as_str()), ("bkt", "my key"));
        assert_eq!(ok(&[Bucket, Key], "b,k\r").target.key, "k");
    }

    #[test]
    fn bad_lines_name_their_line() {
        let e = err(&[Bucket, Key], "b,k,v,extra");
        assert_eq!(e.line, 7);
        assert!(e.reason.starts_with("manifest line 7: expected 2 columns"), "{}", e.reason);
        assert!(err(&[Bucket, Key], ",k").reason.contains("bucket column is empty"));
        assert!(err(&[Bucket, Key], "b,").reason.contains("key column is empty"));
        assert!(err(&[Bucket, Key], "b,%FF").reason.contains("does not URL-decode"));
        assert!(err(&[Bucket, Key], "b,\"open").reason.contains("unterminated"));
        let e = parse_line(&[Bucket, Key], 3, b"b,\xff").unwrap_err();
        assert!(e.reason.contains("not UTF-8"));
    }

    #[test]
    fn a_header_row_is_recognised_by_its_bucket_column_name() {
        assert!(header_row(&[Bucket, Key], b"Bucket,Key").unwrap().starts_with("manifest line 1:"));
        assert!(header_row(&[Ignore, Bucket, Key], b"x,bucket_name,key").is_some());
        assert!(header_row(&[Bucket, Key], b"my-bucket,Key").is_none());
        assert!(header_row(&[Bucket, Key], "\u{feff}bk1,k\r".as_bytes()).is_none());
        assert!(header_row(&[Bucket, Key], b"").is_none());
        assert!(header_row(&[Bucket, Key], b"bucket,key").is_some());
        assert!(header_row(&[Bucket, Key], b"b,k").is_none(), "a short name fails its task, not the job");
    }

    #[test]
    fn a_byte_order_mark_on_line_one_is_skipped() {
        let e = parse_line(&[Bucket, Key], 1, "\u{feff}b,k".as_bytes()).unwrap();
        assert_eq!(e.target.bucket, "b");
    }

    #[test]
    fn lines_are_numbered_and_a_final_newline_is_not_a_line() {
        let v: Vec<_> = lines(b"a\nb\n", 10).collect();
        assert_eq!(v, vec![(10, &b"a"[..]), (11, &b"b"[..])]);
        assert_eq!(lines(b"a\n\nb", 1).count(), 3);
        assert_eq!(lines(b"", 1).count(), 0);
    }
}

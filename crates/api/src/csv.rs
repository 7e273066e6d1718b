//! CSV answers (CONTRACT §11): content negotiation and RFC 4180 rows.
//!
//! Every field is quoted (`"…"`, a `"` inside doubled), rows end with CRLF. A text field that
//! starts with `=`, `+`, `-` or `@` (or a tab or carriage return) gets a leading `'`, the
//! usual defence against spreadsheet formula injection; numeric columns (amounts, months)
//! are written as numbers and never escaped, so a spreadsheet still sums them.
use actix_web::HttpRequest;
use actix_web::http::header;

/// The media type of the answers.
pub const CONTENT_TYPE: &str = "text/csv; charset=utf-8";

/// Whether the client asked for CSV: `Accept` names `text/csv` with a quality at least that of
/// any JSON it also accepts (`application/json`, `application/*`, `*/*`).
pub fn wants_csv(req: &HttpRequest) -> bool {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let (mut csv, mut json) = (0.0_f32, 0.0_f32);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "text/csv" => csv = csv.max(quality),
            "application/json" | "application/*" | "*/*" => json = json.max(quality),
            _ => {}
        }
    }
    csv > 0.0 && csv >= json
}

/// A CSV export holds every match: `limit` and `cursor` are refused (422 naming them).
pub fn no_paging(limit: bool, cursor: bool) -> Result<(), crate::error::ApiError> {
    let errors: Vec<_> = [("limit", limit), ("cursor", cursor)]
        .into_iter()
        .filter(|(_, given)| *given)
        .map(|(field, _)| {
            crate::error::FieldError::new(
                field,
                "a CSV export holds every match; paging does not apply",
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(crate::error::ApiError::validation(errors))
    }
}

/// One row being written into a buffer.
pub struct Row<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Row<'a> {
    pub fn new(out: &'a mut String) -> Self {
        Self { out, first: true }
    }

    fn open(&mut self) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
    }

    /// A text field (empty when null), escaped against formula injection.
    pub fn text(&mut self, value: Option<&str>) -> &mut Self {
        self.open();
        if let Some(value) = value {
            if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                self.out.push('\'');
            }
            for c in value.chars() {
                if c == '"' {
                    self.out.push('"');
                }
                self.out.push(c);
            }
        }
        self.out.push('"');
        self
    }

    /// A number (empty when null), written as it is.
    pub fn number(&mut self, value: Option<i64>) -> &mut Self {
        self.open();
        if let Some(value) = value {
            self.out.push_str(&value.to_string());
        }
        self.out.push('"');
        self
    }

    /// Ends the row.
    pub fn end(&mut self) {
        self.out.push_str("\r\n");
    }
}

/// An instant as RFC 3339 UTC text (`Z`), for [`Row::text`].
pub fn instant(t: Option<time::OffsetDateTime>) -> Option<String> {
    t.and_then(|t| {
        t.to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn quotes_every_field_and_escapes_formulas() {
        let mut out = String::new();
        Row::new(&mut out)
            .text(Some("plain"))
            .text(Some("a, \"quoted\" name"))
            .text(Some("=HYPERLINK(\"x\")"))
            .text(Some("-2+3"))
            .text(Some("@SUM(A1)"))
            .text(Some("+1"))
            .text(None)
            .number(Some(-500))
            .number(None)
            .end();
        assert_eq!(
            out,
            "\"plain\",\"a, \"\"quoted\"\" name\",\"'=HYPERLINK(\"\"x\"\")\",\"'-2+3\",\"'@SUM(A1)\",\"'+1\",\"\",\"-500\",\"\"\r\n"
        );
    }

    #[test]
    fn negotiates_on_accept() {
        let with = |accept: &str| {
            wants_csv(
                &TestRequest::default()
                    .insert_header((header::ACCEPT, accept))
                    .to_http_request(),
            )
        };
        assert!(with("text/csv"));
        assert!(with("text/csv, application/json;q=0.5"));
        assert!(with("TEXT/CSV;charset=utf-8"));
        assert!(!with("application/json"));
        assert!(!with("*/*"));
        assert!(!with("application/json, text/csv;q=0.5"));
        assert!(!with("text/csv;q=0"));
        assert!(!wants_csv(&TestRequest::default().to_http_request()));
    }
}

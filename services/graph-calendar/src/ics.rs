//! The meeting's invitation as an iCalendar object (RFC 5545), built by Brain: Graph has no ICS
//! export. `UID` is the event's `iCalUId`, so calendar clients match Brain's file with Outlook's
//! own invitation; `METHOD:REQUEST` for a booking (and a resent invitation), `METHOD:CANCEL` with
//! `STATUS:CANCELLED` once cancelled; `SEQUENCE` rises with every change. Times are UTC
//! (`DTSTART:20260601T100000Z`). Lines end in CRLF and are folded at 75 octets (never inside a
//! UTF-8 character); TEXT values are escaped (`\\`, `\;`, `\,`, `\n`), parameter values quoted.

use chrono::{DateTime, Utc};

/// Brain's product identifier in `PRODID`.
pub const PRODID: &str = "-//Brain//graph-calendar//EN";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Request,
    Cancel,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "REQUEST",
            Self::Cancel => "CANCEL",
        }
    }
}

/// What the invitation says.
#[derive(Debug, Clone)]
pub struct Invitation<'a> {
    pub method: Method,
    pub uid: &'a str,
    pub sequence: i32,
    /// When this version of the invitation was made (`DTSTAMP`).
    pub stamp: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub summary: &'a str,
    pub organizer_email: &'a str,
    pub organizer_name: Option<&'a str>,
    pub attendee_email: &'a str,
    pub attendee_name: Option<&'a str>,
    pub join_url: Option<&'a str>,
}

/// The VCALENDAR text, CRLF line ends, folded.
pub fn render(inv: &Invitation<'_>) -> String {
    let mut lines: Vec<String> = vec![
        "BEGIN:VCALENDAR".into(),
        "VERSION:2.0".into(),
        format!("PRODID:{PRODID}"),
        "CALSCALE:GREGORIAN".into(),
        format!("METHOD:{}", inv.method.as_str()),
        "BEGIN:VEVENT".into(),
        format!("UID:{}", escape(inv.uid)),
        format!("SEQUENCE:{}", inv.sequence),
        format!("DTSTAMP:{}", utc(inv.stamp)),
        format!("DTSTART:{}", utc(inv.start)),
        format!("DTEND:{}", utc(inv.end)),
        format!("SUMMARY:{}", escape(inv.summary)),
    ];
    if let Some(url) = inv.join_url {
        lines.push(format!("DESCRIPTION:{}", escape(&format!("Join the Microsoft Teams meeting: {url}"))));
        lines.push("LOCATION:Microsoft Teams Meeting".into());
        lines.push(format!("URL:{}", uri(url)));
        lines.push(format!("X-MICROSOFT-SKYPETEAMSMEETINGURL:{}", uri(url)));
    }
    lines.push(format!("ORGANIZER{}:mailto:{}", cn(inv.organizer_name), uri(inv.organizer_email)));
    let partstat = match inv.method {
        Method::Request => ";ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE",
        Method::Cancel => ";ROLE=REQ-PARTICIPANT",
    };
    lines.push(format!("ATTENDEE{}{partstat}:mailto:{}", cn(inv.attendee_name), uri(inv.attendee_email)));
    lines.push(format!("STATUS:{}", if inv.method == Method::Cancel { "CANCELLED" } else { "CONFIRMED" }));
    lines.push("TRANSP:OPAQUE".into());
    lines.extend(["END:VEVENT".into(), "END:VCALENDAR".into()]);
    lines.iter().map(|l| fold(l)).collect()
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A TEXT value (RFC 5545 3.3.11).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A URI value: not escaped, but it cannot carry line breaks or other control characters.
fn uri(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).collect()
}

/// `;CN="..."`: a quoted parameter value may not hold `"` or control characters.
fn cn(name: Option<&str>) -> String {
    match name.map(|n| n.chars().filter(|c| *c != '"' && !c.is_control()).collect::<String>()) {
        Some(n) if !n.trim().is_empty() => format!(";CN=\"{}\"", n.trim()),
        _ => String::new(),
    }
}

/// One content line folded at 75 octets (continuations start with a space, which counts), CRLF
/// after each part.
pub fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 70 * 3 + 2);
    let mut width = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn invitation(method: Method, sequence: i32) -> Invitation<'static> {
        Invitation {
            method,
            uid: "040000008200E00074C5B7101A82E0080000000012345",
            sequence,
            stamp: at("2026-06-01T08:00:00Z"),
            start: at("2026-06-01T10:00:00Z"),
            end: at("2026-06-01T10:30:00Z"),
            summary: "Loan review; documents, next steps\\ and questions",
            organizer_email: "ann@contoso.example",
            organizer_name: Some("Ann \"the\" Lee"),
            attendee_email: "bo@example.com",
            attendee_name: Some("Bo Borrower"),
            join_url: Some("https://teams.microsoft.com/l/meetup-join/19%3ameeting_NjY1%40thread.v2/0?context=%7b%22Tid%22%3a%22t%22%7d"),
        }
    }

    /// Unfolds content lines as a parser does.
    fn unfold(text: &str) -> Vec<String> {
        text.replace("\r\n ", "").split("\r\n").filter(|l| !l.is_empty()).map(str::to_string).collect()
    }

    #[test]
    fn a_request_has_the_uid_method_sequence_and_utc_times() {
        let text = render(&invitation(Method::Request, 0));
        assert!(text.ends_with("END:VCALENDAR\r\n"));
        assert!(!text.replace("\r\n", "").contains('\n'), "only CRLF line ends");
        let lines = unfold(&text);
        for expected in [
            "METHOD:REQUEST",
            "UID:040000008200E00074C5B7101A82E0080000000012345",
            "SEQUENCE:0",
            "DTSTART:20260601T100000Z",
            "DTEND:20260601T103000Z",
            "DTSTAMP:20260601T080000Z",
            "STATUS:CONFIRMED",
            r"SUMMARY:Loan review\; documents\, next steps\\ and questions",
            "ORGANIZER;CN=\"Ann the Lee\":mailto:ann@contoso.example",
            "ATTENDEE;CN=\"Bo Borrower\";ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bo@example.com",
        ] {
            assert!(lines.iter().any(|l| l == expected), "{expected} missing in {lines:#?}");
        }
        assert!(lines.iter().any(|l| l.starts_with("URL:https://teams.microsoft.com/l/meetup-join/")));
        assert_eq!(lines.first().map(String::as_str), Some("BEGIN:VCALENDAR"));
    }

    #[test]
    fn a_cancel_says_so_with_a_higher_sequence() {
        let lines = unfold(&render(&invitation(Method::Cancel, 1)));
        for expected in ["METHOD:CANCEL", "SEQUENCE:1", "STATUS:CANCELLED"] {
            assert!(lines.iter().any(|l| l == expected), "{expected}");
        }
    }

    #[test]
    fn lines_fold_at_75_octets_without_splitting_characters() {
        let text = render(&invitation(Method::Request, 3));
        for physical in text.split("\r\n") {
            assert!(physical.len() <= 75, "{} octets: {physical:?}", physical.len());
        }
        let long = format!("SUMMARY:{}", "é".repeat(60));
        let folded = fold(&long);
        assert!(folded.split("\r\n").all(|l| l.len() <= 75));
        assert_eq!(unfold(&folded), vec![long.clone()], "unfolding gives the line back");
        assert_eq!(fold("SHORT:x"), "SHORT:x\r\n");
        assert_eq!(fold(&"x".repeat(75)).matches("\r\n").count(), 1, "75 octets fit on one line");
        assert_eq!(fold(&"x".repeat(76)), format!("{}\r\n x\r\n", "x".repeat(75)));
    }

    #[test]
    fn text_is_escaped_and_line_breaks_become_backslash_n() {
        assert_eq!(escape("a,b;c\\d\r\ne\nf"), r"a\,b\;c\\d\ne\nf");
        assert_eq!(cn(Some("  ")), "");
        assert_eq!(uri("mailto:a@b\r\nX-EVIL:1"), "mailto:a@bX-EVIL:1");
    }
}

//! Tokenizer and recursive-descent parser of the query language (see the parent module).

use super::{Condition, DEFAULT_MAX_RESULTS, Literal, MAX_RESULTS_CAP, Op, Query};
use crate::{error::Fault, model::EntityKind};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(f64),
    Symbol(String),
}

fn tokenize(input: &str) -> Result<Vec<Token>, Fault> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next() {
                    Some('\\') => text.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => text.push(c),
                    None => return Err(Fault::query_parse("unterminated string literal")),
                }
            }
            tokens.push(Token::Text(text));
        } else if c.is_ascii_digit() || c == '-' {
            let mut number = String::new();
            while let Some(&c) = chars
                .peek()
                .filter(|c| c.is_ascii_digit() || matches!(c, '.' | '-'))
            {
                number.push(c);
                chars.next();
            }
            let n = number
                .parse()
                .map_err(|_| Fault::query_parse(format!("Encountered \"{number}\"")))?;
            tokens.push(Token::Number(n));
        } else if c.is_alphanumeric() || c == '_' {
            let mut word = String::new();
            while let Some(&c) = chars
                .peek()
                .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '.'))
            {
                word.push(c);
                chars.next();
            }
            tokens.push(Token::Word(word));
        } else if matches!(c, '<' | '>' | '!' | '=') {
            chars.next();
            let mut symbol = c.to_string();
            if chars.peek() == Some(&'=') || (c == '<' && chars.peek() == Some(&'>')) {
                symbol.extend(chars.next());
            }
            tokens.push(Token::Symbol(symbol));
        } else if matches!(c, '*' | ',' | '(' | ')') {
            chars.next();
            tokens.push(Token::Symbol(c.to_string()));
        } else {
            return Err(Fault::query_parse(format!("Encountered \"{c}\"")));
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&mut self, kw: &str) -> bool {
        let hit = matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw));
        if hit {
            self.at += 1;
        }
        hit
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), Fault> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(self.unexpected(kw))
        }
    }

    fn symbol(&mut self, s: &str) -> bool {
        let hit = matches!(self.peek(), Some(Token::Symbol(t)) if t == s);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn unexpected(&self, wanted: &str) -> Fault {
        match self.peek() {
            Some(t) => Fault::query_parse(format!("Encountered {t:?}, expected {wanted}")),
            None => Fault::query_parse(format!("Encountered end of query, expected {wanted}")),
        }
    }

    fn word(&mut self, what: &str) -> Result<String, Fault> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let w = w.clone();
                self.at += 1;
                Ok(w)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn literal(&mut self) -> Result<Literal, Fault> {
        match self.next() {
            Some(Token::Text(t)) => Ok(Literal::Text(t)),
            Some(Token::Number(n)) => Ok(Literal::Number(n)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
            _ => {
                self.at -= 1;
                Err(self.unexpected("a literal"))
            }
        }
    }

    fn position(&mut self, what: &str) -> Result<usize, Fault> {
        match self.next() {
            Some(Token::Number(n)) if n.fract() == 0.0 && n >= 1.0 => Ok(n as usize),
            _ => Err(Fault::query_parse(format!(
                "{what} must be a whole number of at least 1"
            ))),
        }
    }
}

pub fn parse(input: &str) -> Result<Query, Fault> {
    let mut p = Parser {
        tokens: tokenize(input)?,
        at: 0,
    };
    p.expect_keyword("select")?;
    let (mut count, mut fields) = (false, None);
    if p.symbol("*") {
        // Every field.
    } else if p.keyword("count") {
        if !(p.symbol("(") && p.symbol("*") && p.symbol(")")) {
            return Err(p.unexpected("count(*)"));
        }
        count = true;
    } else {
        let mut list = vec![p.word("a field")?];
        while p.symbol(",") {
            list.push(p.word("a field")?);
        }
        fields = Some(list);
    }
    p.expect_keyword("from")?;
    let name = p.word("an entity")?;
    let entity = EntityKind::parse(&name)
        .ok_or_else(|| Fault::query_parse(format!("Invalid entity name: {name}")))?;
    let mut query = Query {
        entity,
        count,
        fields,
        conditions: Vec::new(),
        order: Vec::new(),
        start_position: 1,
        max_results: DEFAULT_MAX_RESULTS,
    };
    if p.keyword("where") {
        loop {
            let field = p.word("a field")?;
            let op = match p.next() {
                Some(Token::Symbol(s)) => match s.as_str() {
                    "=" => Op::Eq,
                    "!=" | "<>" => Op::Ne,
                    "<" => Op::Lt,
                    ">" => Op::Gt,
                    "<=" => Op::Le,
                    ">=" => Op::Ge,
                    _ => return Err(Fault::query_parse(format!("Encountered \"{s}\""))),
                },
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("in") => Op::In,
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("like") => Op::Like,
                _ => {
                    return Err(Fault::query_parse(format!(
                        "expected an operator after {field}"
                    )));
                }
            };
            let values = if op == Op::In {
                if !p.symbol("(") {
                    return Err(p.unexpected("("));
                }
                let mut values = vec![p.literal()?];
                while p.symbol(",") {
                    values.push(p.literal()?);
                }
                if !p.symbol(")") {
                    return Err(p.unexpected(")"));
                }
                values
            } else {
                vec![p.literal()?]
            };
            query.conditions.push(Condition { field, op, values });
            if !p.keyword("and") {
                break;
            }
        }
    }
    if p.keyword("orderby") || (p.keyword("order") && p.keyword("by")) {
        loop {
            let field = p.word("a field")?;
            let descending = p.keyword("desc");
            if !descending {
                p.keyword("asc");
            }
            query.order.push((field, descending));
            if !p.symbol(",") {
                break;
            }
        }
    }
    loop {
        if p.keyword("startposition") {
            query.start_position = p.position("STARTPOSITION")?;
        } else if p.keyword("maxresults") {
            query.max_results = p.position("MAXRESULTS")?.min(MAX_RESULTS_CAP);
        } else {
            break;
        }
    }
    if p.peek().is_some() {
        return Err(p.unexpected("end of query"));
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sync_query() {
        let q = parse("select * from Bill where MetaData.LastUpdatedTime > '2026-01-01T00:00:00-07:00' ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1001 MAXRESULTS 5000").unwrap();
        assert_eq!(q.entity, EntityKind::Bill);
        assert_eq!(q.conditions[0].op, Op::Gt);
        assert_eq!(
            q.order,
            vec![("MetaData.LastUpdatedTime".to_owned(), false)]
        );
        assert_eq!((q.start_position, q.max_results), (1001, 1000));
        let q =
            parse("SELECT COUNT(*) FROM invoice WHERE Id IN ('1', '2') AND Balance > 0").unwrap();
        assert!(q.count);
        assert_eq!(q.conditions[0].values.len(), 2);
    }

    #[test]
    fn rejects_what_qbo_rejects() {
        for bad in [
            "select * from Nothing",
            "select * from Bill STARTPOSITION 0",
            "select * from Bill where",
            "select * from Bill where DocNumber = 'open",
            "delete from Bill",
        ] {
            let fault = parse(bad).unwrap_err();
            assert_eq!(fault.error.code, "4000", "{bad}");
        }
    }
}

//! What a connection says of its resumable session: its token and its count, taken out of
//! the query before anything else sees them, and checked.

use std::fmt;

/// The query parameter that names the session: the client's token.
pub const SESSION_PARAM: &str = "wsd_session";
/// The query parameter that says how many messages of the session the client has had.
pub const SEEN_PARAM: &str = "wsd_seen";
/// Fewest characters of a token: 22 of its alphabet carry 131 bits.
pub const TOKEN_MIN: usize = 22;
/// Most characters of a token.
pub const TOKEN_MAX: usize = 128;

/// A session's token: what the client made, checked, and never shown.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(Box<str>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

/// What a connection says of its session: the token, and how many messages it has had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The session's token.
    pub token: Token,
    /// How many of the session's messages the client has had.
    pub seen: u64,
}

/// Why the session parameters of a request are refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadTicket {
    /// The token is too short, too long, or has a character outside `A-Z a-z 0-9 - _`.
    #[error(
        "wsd_session must be {TOKEN_MIN} to {TOKEN_MAX} characters of A-Z, a-z, 0-9, '-' and '_'"
    )]
    Token,
    /// The count is not a decimal number.
    #[error("wsd_seen must be a decimal number")]
    Seen,
    /// A count without a token.
    #[error("wsd_seen without wsd_session")]
    SeenAlone,
    /// A parameter given twice.
    #[error("{0} given twice")]
    Twice(&'static str),
}

impl Ticket {
    /// Takes the session parameters out of `query`: the ticket they make, if there are any
    /// (or why they are refused), and the query without them (the other parameters as they
    /// were, in their order).
    pub fn take(query: &str) -> (Result<Option<Ticket>, BadTicket>, String) {
        let mut rest = Vec::new();
        let ticket = Ticket::parse(query, &mut rest);
        (ticket, rest.join("&"))
    }

    fn parse<'q>(query: &'q str, rest: &mut Vec<&'q str>) -> Result<Option<Ticket>, BadTicket> {
        let (mut token, mut seen) = (None, None);
        for param in query.split('&') {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            let slot = match name {
                SESSION_PARAM => &mut token,
                SEEN_PARAM => &mut seen,
                _ => {
                    rest.push(param);
                    continue;
                }
            };
            if slot.replace(value).is_some() {
                return Err(BadTicket::Twice(if name == SESSION_PARAM {
                    SESSION_PARAM
                } else {
                    SEEN_PARAM
                }));
            }
        }
        let Some(token) = token else {
            return match seen {
                Some(_) => Err(BadTicket::SeenAlone),
                None => Ok(None),
            };
        };
        let alphabet = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        if !(TOKEN_MIN..=TOKEN_MAX).contains(&token.len()) || !token.bytes().all(alphabet) {
            return Err(BadTicket::Token);
        }
        let seen = match seen {
            None => 0,
            Some(s) if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) => {
                s.parse().map_err(|_| BadTicket::Seen)?
            }
            Some(_) => return Err(BadTicket::Seen),
        };
        Ok(Some(Ticket { token: Token(token.into()), seen }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(query: &str) -> Result<(Option<(String, u64)>, String), BadTicket> {
        let (ticket, rest) = Ticket::take(query);
        ticket.map(|t| (t.map(|t| (t.token.0.into(), t.seen)), rest))
    }

    #[test]
    fn the_session_parameters_come_out_of_the_query_and_the_rest_stays_in_order() {
        let token = "0b7d6c1e-3f4a-4c2b-9d8e-1a2b3c4d5e6f";
        let q = format!("a=1&wsd_session={token}&b=2&wsd_seen=17&c");
        assert_eq!(take(&q), Ok((Some((token.to_owned(), 17)), "a=1&b=2&c".to_owned())));
        assert_eq!(take("a=1"), Ok((None, "a=1".to_owned())));
        assert_eq!(
            take(&format!("wsd_session={token}")),
            Ok((Some((token.to_owned(), 0)), String::new()))
        );
    }

    #[test]
    fn odd_tokens_and_counts_are_refused() {
        let ok = "A".repeat(22);
        assert_eq!(take(&format!("wsd_session={}", "A".repeat(21))), Err(BadTicket::Token));
        assert_eq!(take(&format!("wsd_session={}", "A".repeat(129))), Err(BadTicket::Token));
        assert_eq!(take(&format!("wsd_session={ok}%20")), Err(BadTicket::Token));
        assert_eq!(take(&format!("wsd_session={ok}&wsd_seen=-1")), Err(BadTicket::Seen));
        assert_eq!(take(&format!("wsd_session={ok}&wsd_seen=")), Err(BadTicket::Seen));
        assert_eq!(
            take(&format!("wsd_session={ok}&wsd_seen=99999999999999999999")),
            Err(BadTicket::Seen)
        );
        assert_eq!(take("wsd_seen=3"), Err(BadTicket::SeenAlone));
        assert_eq!(
            take(&format!("wsd_session={ok}&wsd_session={ok}")),
            Err(BadTicket::Twice(SESSION_PARAM))
        );
    }

    #[test]
    fn a_token_never_shows_in_debug_output() {
        let (ticket, rest) = Ticket::take(&format!("wsd_session={}", "S".repeat(30)));
        assert_eq!(rest, "");
        let ticket = ticket.unwrap();
        assert!(!format!("{ticket:?}").contains("SSS"));
    }
}

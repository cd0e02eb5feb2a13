//! Counters kept by the endpoint, and the reasons a datagram can be dropped.

/// Why a datagram was dropped. The discriminant indexes `Stats::dropped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than type byte + id + one body byte (Python drops these too).
    TooShort,
    /// Type byte other than request, response or error reply.
    UnknownType,
    /// Body is not exactly one well-formed msgpack value.
    Malformed,
    /// Containers nested deeper than `Config::max_depth`.
    TooDeep,
    /// Request not `[name: str, args: array]`, or error reply not `[str, str]`.
    BadRequest,
    /// A msgpack str that is not UTF-8.
    BadUtf8,
    /// msgpack ext types, which no peer of this protocol sends.
    UnsupportedType,
    /// Response or error reply whose id is not outstanding (unknown, duplicate, late).
    UnmatchedResponse,
    /// Response or error reply from an address other than the one the call went to.
    WrongSender,
    /// Counted by the driver when the socket refuses a datagram.
    SendFailed,
    /// Counted by the driver when the consumer cannot take more requests.
    HandlersBusy,
    /// Larger than the receive buffer (so cut short by the kernel), or from an
    /// address the socket API cannot express.
    Oversize,
    /// A request beyond its source's token bucket (`Config::per_source`).
    RateLimited,
    /// A request that arrived while the consumer was closing (draining).
    Closing,
    /// A reply held back because its destination never answered a call of
    /// ours and was already sent its share (`Config::reflection`).
    Unverified,
}

impl DropReason {
    pub const COUNT: usize = 15;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::TooShort,
        DropReason::UnknownType,
        DropReason::Malformed,
        DropReason::TooDeep,
        DropReason::BadRequest,
        DropReason::BadUtf8,
        DropReason::UnsupportedType,
        DropReason::UnmatchedResponse,
        DropReason::WrongSender,
        DropReason::SendFailed,
        DropReason::HandlersBusy,
        DropReason::Oversize,
        DropReason::RateLimited,
        DropReason::Closing,
        DropReason::Unverified,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TooShort => "too_short",
            DropReason::UnknownType => "unknown_type",
            DropReason::Malformed => "malformed",
            DropReason::TooDeep => "too_deep",
            DropReason::BadRequest => "bad_request",
            DropReason::BadUtf8 => "bad_utf8",
            DropReason::UnsupportedType => "unsupported_type",
            DropReason::UnmatchedResponse => "unmatched_response",
            DropReason::WrongSender => "wrong_sender",
            DropReason::SendFailed => "send_failed",
            DropReason::HandlersBusy => "handlers_busy",
            DropReason::Oversize => "oversize",
            DropReason::RateLimited => "rate_limited",
            DropReason::Closing => "closing",
            DropReason::Unverified => "unverified",
        }
    }

    /// The name JavaScript uses (camelCase), so the binding exports one list.
    pub fn js_name(self) -> String {
        let mut out = String::new();
        let mut upper = false;
        for c in self.as_str().chars() {
            match c {
                '_' => upper = true,
                c if upper => {
                    out.push(c.to_ascii_uppercase());
                    upper = false;
                }
                c => out.push(c),
            }
        }
        out
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests_sent: u64,
    pub requests_received: u64,
    pub responses_sent: u64,
    pub responses_received: u64,
    pub errors_sent: u64,
    pub errors_received: u64,
    pub timeouts: u64,
    /// Indexed by `DropReason as usize`; prefer `dropped()`.
    pub dropped: [u64; DropReason::COUNT],
}

impl Stats {
    pub fn count_drop(&mut self, r: DropReason) {
        self.dropped[r as usize] += 1;
    }

    pub fn dropped(&self, r: DropReason) -> u64 {
        self.dropped[r as usize]
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_discriminant_order_with_distinct_names() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn js_names_are_camel_case() {
        assert_eq!(DropReason::UnmatchedResponse.js_name(), "unmatchedResponse");
        assert_eq!(DropReason::TooShort.js_name(), "tooShort");
        assert_eq!(DropReason::Oversize.js_name(), "oversize");
    }

    #[test]
    fn counts_per_reason() {
        let mut s = Stats::default();
        s.count_drop(DropReason::TooDeep);
        s.count_drop(DropReason::TooDeep);
        s.count_drop(DropReason::HandlersBusy);
        assert_eq!(s.dropped(DropReason::TooDeep), 2);
        assert_eq!(s.dropped(DropReason::HandlersBusy), 1);
        assert_eq!(s.dropped(DropReason::Malformed), 0);
        assert_eq!(s.dropped_total(), 3);
    }
}

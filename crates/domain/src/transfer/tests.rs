use time::Duration;
use time::macros::datetime;

use super::*;

const NOW: OffsetDateTime = datetime!(2024-06-01 00:00 UTC);

fn pending() -> TransferState {
    TransferState::offer(NOW, Duration::days(7))
}

#[test]
fn accept_with_the_right_secret() {
    let s = pending().accept(true, NOW + Duration::days(1)).unwrap();
    assert_eq!(s.status, TransferStatus::Accepted);
    assert_eq!(s.failed_attempts, 0);
}

#[test]
fn wrong_secrets_are_counted_and_the_fifth_expires() {
    let mut s = pending();
    for attempt in 1..=MAX_SECRET_ATTEMPTS {
        match s.accept(false, NOW) {
            Err(TransferError::InvalidSecret(next)) => {
                assert_eq!(next.failed_attempts, attempt);
                let expected = if attempt < MAX_SECRET_ATTEMPTS {
                    TransferStatus::Pending
                } else {
                    TransferStatus::Expired
                };
                assert_eq!(next.status, expected);
                s = next;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Even the right secret is refused now.
    assert_eq!(
        s.accept(true, NOW),
        Err(TransferError::InvalidTransition {
            from: TransferStatus::Expired
        })
    );
}

#[test]
fn a_lapsed_offer_expires_on_accept() {
    let s = pending();
    let late = s.expires_at;
    let err = s.accept(true, late).unwrap_err();
    assert_eq!(
        err,
        TransferError::Expired(TransferState {
            status: TransferStatus::Expired,
            ..s
        })
    );
    // Expiry wins over a wrong secret, and the attempt is not counted.
    assert!(matches!(
        s.accept(false, late),
        Err(TransferError::Expired(TransferState {
            failed_attempts: 0,
            ..
        }))
    ));
}

#[test]
fn reject_cancel_and_sweep() {
    assert_eq!(pending().reject().unwrap().status, TransferStatus::Rejected);
    assert_eq!(
        pending().cancel().unwrap().status,
        TransferStatus::Cancelled
    );
    let s = pending();
    assert_eq!(
        s.expire(s.expires_at).unwrap().status,
        TransferStatus::Expired
    );
    assert_eq!(
        s.expire(NOW),
        Err(TransferError::InvalidTransition {
            from: TransferStatus::Pending
        })
    );
}

#[test]
fn only_pending_transfers_move() {
    let done = [
        pending().reject().unwrap(),
        pending().cancel().unwrap(),
        pending().accept(true, NOW).unwrap(),
        pending().expire(NOW + Duration::days(8)).unwrap(),
    ];
    for s in done {
        let e = Err(TransferError::InvalidTransition { from: s.status });
        assert_eq!(s.accept(true, NOW), e);
        assert_eq!(s.reject(), e);
        assert_eq!(s.cancel(), e);
        assert_eq!(s.expire(NOW + Duration::days(30)), e);
    }
}

#[test]
fn secrets_are_hashed_and_compared() {
    let stored = hash_secret("correct horse battery staple");
    assert!(secret_matches("correct horse battery staple", &stored));
    assert!(!secret_matches("correct horse battery stapl", &stored));
    assert!(!secret_matches("", &stored));
    assert!(!secret_matches(
        "correct horse battery staple",
        &stored[..31]
    ));
    // Known SHA-256 vector, so the stored format is pinned.
    let abc = hash_secret("abc");
    assert_eq!(abc[..4], [0xba, 0x78, 0x16, 0xbf]);
    assert_eq!(abc[28..], [0xf2, 0x00, 0x15, 0xad]);
}

#[test]
fn given_secrets_have_bounded_length() {
    assert!(validate_given_secret(&"x".repeat(11)).is_err());
    assert!(validate_given_secret(&"x".repeat(12)).is_ok());
    assert!(validate_given_secret(&"é".repeat(256)).is_ok());
    assert!(validate_given_secret(&"x".repeat(257)).is_err());
}

#[test]
fn statuses_round_trip_as_text() {
    for s in [
        TransferStatus::Pending,
        TransferStatus::Accepted,
        TransferStatus::Rejected,
        TransferStatus::Cancelled,
        TransferStatus::Expired,
    ] {
        assert_eq!(s.as_str().parse::<TransferStatus>().unwrap(), s);
    }
}

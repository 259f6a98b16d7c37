use super::*;

/// A remembered secret passes exactly where one more counted guess would: the
/// `n`-th counted attempt is within the limit iff `n - 1` counted before left room.
#[test]
fn the_limit_counts_the_attempt_itself() {
    let max = 10;
    for before in 0..=12u64 {
        for address in [None, Some(0), Some(5), Some(9), Some(10), Some(11)] {
            let counted = within_limit(before + 1, address.map(|a| a + 1), max);
            let room = budget_left(
                &std::iter::once(before).chain(address).collect::<Vec<_>>(),
                max,
            );
            assert_eq!(counted, room, "before {before}, address {address:?}");
        }
    }
    assert!(within_limit(10, Some(10), 10));
    assert!(!within_limit(11, Some(1), 10));
    assert!(!within_limit(1, Some(11), 10));
    assert!(within_limit(1, None, 10));
}

#[test]
fn the_account_slow_down_grows_and_is_bounded() {
    let max = Duration::from_secs(5);
    let ms = |count| failure_delay(count, 100, max).as_millis();
    assert_eq!([ms(0), ms(99)], [0, 0]);
    assert_eq!([ms(100), ms(101), ms(102), ms(105)], [100, 200, 400, 3200]);
    assert_eq!([ms(106), ms(1000), ms(u64::MAX)], [5000, 5000, 5000]);
}

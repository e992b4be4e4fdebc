//! A card or phone number written right after or before other digit groups (a CVV, an expiry,
//! a date, a second phone number) joined them into one run that was checked only as a whole,
//! so it was missed. Each card- or phone-shaped part of a run is now checked on its own.

use llmtel_eval::{PiiKind, find_pii};

use PiiKind::{CardNumber, Phone};

#[test]
fn a_card_next_to_other_numbers_is_found() {
    for text in [
        "4111 1111 1111 1111 123",
        "Card 4111 1111 1111 1111 12/26",
        "Paid on 2024-05-01 4111 1111 1111 1111",
        "card 5555-5555-5555-4444 exp 0127",
        "4111111111111111 123",
        "Amex 3782 822463 10005 1234",
    ] {
        assert_eq!(find_pii(text), vec![CardNumber], "{text}");
    }
    // Two cards in one run are two cards.
    assert_eq!(
        find_pii("4111 1111 1111 1111 5555 5555 5555 4444"),
        vec![CardNumber, CardNumber]
    );
}

#[test]
fn phone_numbers_one_after_the_other_are_each_found() {
    assert_eq!(
        find_pii("Call 555-123-4567 555-987-6543"),
        vec![Phone, Phone]
    );
    assert_eq!(
        find_pii("(555) 123-4567 (555) 987-6543 (555) 222-3333"),
        vec![Phone, Phone, Phone]
    );
    assert_eq!(find_pii("On 2024-05-01 030 90182034"), vec![Phone]);
}

#[test]
fn runs_of_ordinary_numbers_are_still_not_pii() {
    for text in [
        "Dates: 2024-05-01 2024-06-01 2024-07-01",
        "Years 2019 2020 2021 2022 2023 2024",
        "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
        "Totals 1200 3400 5600 7800 9000 1100",
        "12 450 300 000 125 000 000",
        "192.168.100.254 10.0.0.1",
        // Luhn-valid 16 digits in 4-4-4-4, but no card network starts with 1.
        "1234 5678 9012 3452 1",
        "Order 2024 4111 1111 1111 1111 shipped",
    ] {
        assert!(find_pii(text).is_empty(), "{text}: {:?}", find_pii(text));
    }
}

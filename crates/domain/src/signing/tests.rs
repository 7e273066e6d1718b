use serde_json::json;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[test]
fn members_sort_by_utf16_code_units() {
    // RFC 8785 §3.2.3: the emoji (a surrogate pair, 0xD83D…) sorts before U+FB33, although
    // its code point is larger.
    let value: Value = serde_json::from_str(
        r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh",
            "1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control",
            "\u00f6":"Latin Small Letter O With Diaeresis"}"#,
    )
    .unwrap();
    assert_eq!(
        canonical_json(&value).unwrap(),
        "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
         \"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\
         \"😀\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
    );
}

#[test]
fn no_whitespace_nested_and_literals() {
    let value = json!({"b": [1, true, null, {"z": -0, "a": "x"}], "a": {"d": 2, "c": []}});
    assert_eq!(
        canonical_json(&value).unwrap(),
        r#"{"a":{"c":[],"d":2},"b":[1,true,null,{"a":"x","z":0}]}"#
    );
}

#[test]
fn strings_escape_like_json_stringify() {
    let s = "q\"b\\s/\u{1}\u{8}\t\n\u{c}\r\u{1f}\u{7f}é\u{2028}😀";
    let mut out = String::new();
    write_string(s, &mut out);
    assert_eq!(
        out,
        "\"q\\\"b\\\\s/\\u0001\\b\\t\\n\\f\\r\\u001f\u{7f}é\u{2028}😀\""
    );
    // The same as serde_json's own escaping.
    assert_eq!(out, serde_json::to_string(s).unwrap());
}

#[test]
fn numbers_are_integers_only() {
    assert_eq!(
        canonical_json(&json!(9_007_199_254_740_991_i64)).unwrap(),
        "9007199254740991"
    );
    assert_eq!(
        canonical_json(&json!(-9_007_199_254_740_991_i64)).unwrap(),
        "-9007199254740991"
    );
    assert_eq!(canonical_json(&json!(3.0)).unwrap(), "3");
    assert_eq!(canonical_json(&json!(-0.0)).unwrap(), "0");
    for bad in [
        json!(9_007_199_254_740_992_i64),
        json!(u64::MAX),
        json!(1.5),
        json!(1e300),
    ] {
        assert!(matches!(
            canonical_json(&bad),
            Err(SignatureError::UnsupportedNumber(_))
        ));
    }
}

#[test]
fn rfc8032_test_vector_1() {
    let secret: [u8; 32] = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        .try_into()
        .unwrap();
    let pair = KeyPair::from_secret(&secret);
    assert_eq!(
        pair.public_key().to_vec(),
        hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    );
    let expected = hex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    );
    assert_eq!(STANDARD.decode(pair.sign_bytes(b"")).unwrap(), expected);
    assert_eq!(pair.key_id().len(), 16);
    assert!(!format!("{pair:?}").contains("9d61"));
}

#[test]
fn sign_and_verify_round_trip() {
    let pair = KeyPair::from_secret(&[7; 32]);
    let mut object = json!({"valid": true, "code": "VALID", "key_id": pair.key_id(),
                            "license": {"options": {"b": 1, "a": 2}, "valid_until": null}});
    let signature = pair.sign_object(&object).unwrap();
    object[SIGNATURE_FIELD] = json!(signature);
    // Member order and whitespace do not matter to the verifier; content does.
    let text = serde_json::to_string_pretty(&object).unwrap();
    verify(&pair.public_key(), &text, &signature).unwrap();
    let keys = BTreeMap::from([(pair.key_id().to_owned(), pair.public_key())]);
    verify_signed(&object, &keys).unwrap();

    let mut tampered = object.clone();
    tampered["license"]["options"]["a"] = json!(3);
    assert_eq!(
        verify_signed(&tampered, &keys),
        Err(SignatureError::Mismatch)
    );
    let other = KeyPair::from_secret(&[8; 32]);
    assert_eq!(
        verify_object(&other.public_key(), &object, &signature),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signed(&object, &BTreeMap::new()),
        Err(SignatureError::UnknownKey(pair.key_id().to_owned()))
    );
    assert_eq!(
        verify(&pair.public_key(), &text, "bm90IGEgc2lnbmF0dXJl"),
        Err(SignatureError::MalformedSignature)
    );
    assert_eq!(
        verify(&pair.public_key(), "[1]", &signature),
        Err(SignatureError::NotAnObject)
    );
}

#[test]
fn public_keys_decode_from_base64() {
    let pair = KeyPair::from_secret(&[1; 32]);
    let b64 = STANDARD.encode(pair.public_key());
    assert_eq!(decode_public_key(&b64).unwrap(), pair.public_key());
    assert_eq!(decode_public_key("AAAA"), Err(SignatureError::MalformedKey));
}

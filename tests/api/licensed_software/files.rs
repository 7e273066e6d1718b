//! Offline license files: issued only for a valid license and a registered machine, verified
//! with the domain crate's routine against the published keys, and broken by any change.
use licentia_domain::license_file::{LicenseFileError, verify_license_file};
use licentia_tests::{TestApp, db_test};
use reqwest::StatusCode;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{active_license, key_of, public_keys, public_post};

fn at(text: &serde_json::Value) -> OffsetDateTime {
    OffsetDateTime::parse(text.as_str().unwrap(), &Rfc3339).unwrap()
}

async fn files_verify_and_break_when_changed(app: &TestApp) {
    let (admin, owner, license) = active_license(app, "file-ok").await;
    let key = key_of(&license);
    let id = license["id"].as_str().unwrap().to_owned();
    public_post(
        app,
        "/v1/registrations",
        json!({"registration_key": key, "fingerprint": "host-1"}),
    )
    .await
    .assert_status(StatusCode::CREATED);

    let issued = public_post(
        app,
        "/v1/license-files",
        json!({"registration_key": key, "fingerprint": "host-1"}),
    )
    .await;
    issued.assert_status(StatusCode::CREATED);
    let file = issued.body["file"].as_str().unwrap();
    assert!(file.starts_with("-----BEGIN LICENSE FILE-----\n"), "{file}");
    assert!(file.trim_end().ends_with("-----END LICENSE FILE-----"));
    let issued_at = at(&issued.body["issued_at"]);
    let expires_at = at(&issued.body["expires_at"]);
    // 30 days by default, well within the 12-month term.
    assert_eq!(expires_at - issued_at, time::Duration::days(30));

    let keys = public_keys(app).await;
    let payload = verify_license_file(file, &keys).unwrap();
    assert_eq!(payload.fingerprint, "host-1");
    assert_eq!(payload.key_id, issued.body["key_id"].as_str().unwrap());
    assert_eq!(payload.license.id.to_string(), id);
    assert_eq!(payload.license.product_code, "file-ok");
    assert_eq!(payload.license.options["extra_domains"], 2);
    assert_eq!(payload.issued_at, issued_at);
    assert_eq!(payload.expires_at, expires_at);
    payload.check_time(OffsetDateTime::now_utc()).unwrap();

    // Changing any one character of the body breaks it; so does another key.
    let lines: Vec<&str> = file.lines().collect();
    let body_line = lines[1];
    for pos in [0, body_line.len() / 2, body_line.len() - 1] {
        let mut changed = body_line.as_bytes().to_vec();
        changed[pos] = if changed[pos] == b'A' { b'B' } else { b'A' };
        let tampered = file.replacen(body_line, std::str::from_utf8(&changed).unwrap(), 1);
        assert!(
            verify_license_file(&tampered, &keys).is_err(),
            "position {pos}"
        );
    }
    let mut forged = keys.clone();
    for key in forged.values_mut() {
        key[0] ^= 1;
    }
    assert!(verify_license_file(file, &forged).is_err());

    // The owner gets the same kind of file; other partners and viewers do not.
    let owner_file = app
        .post(
            &format!("/v1/licenses/{id}/license-file"),
            &owner,
            json!({"fingerprint": "host-1"}),
        )
        .await;
    owner_file.assert_status(StatusCode::CREATED);
    let from_owner = verify_license_file(owner_file.body["file"].as_str().unwrap(), &keys).unwrap();
    assert_eq!(from_owner.license, payload.license);
    let (_, stranger) = app.partner_with_owner(&admin, "Stranger").await;
    app.post(
        &format!("/v1/licenses/{id}/license-file"),
        &stranger,
        json!({"fingerprint": "host-1"}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let viewer = app
        .user_token(&admin, license["account_id"].as_str().unwrap(), "viewer")
        .await;
    app.post(
        &format!("/v1/licenses/{id}/license-file"),
        &viewer,
        json!({"fingerprint": "host-1"}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.post(
        &format!("/v1/licenses/{id}/license-file"),
        &owner,
        json!({"fingerprint": "host-2"}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "fingerprint_not_registered");

    // A file never outlives the term.
    let soon = OffsetDateTime::now_utc() + time::Duration::days(3);
    let soon_text = soon
        .replace_nanosecond(0)
        .unwrap()
        .format(&Rfc3339)
        .unwrap();
    app.patch(
        &format!("/v1/licenses/{id}"),
        &admin,
        json!({"valid_until": soon_text}),
    )
    .await
    .assert_status(StatusCode::OK);
    let short = public_post(
        app,
        "/v1/license-files",
        json!({"registration_key": key, "fingerprint": "host-1"}),
    )
    .await;
    short.assert_status(StatusCode::CREATED);
    assert_eq!(short.body["expires_at"].as_str().unwrap(), soon_text);
    let short_payload = verify_license_file(short.body["file"].as_str().unwrap(), &keys).unwrap();
    assert!(matches!(
        short_payload.check_time(soon),
        Err(LicenseFileError::OutOfTime { .. })
    ));
}

async fn files_only_for_valid_registered_machines(app: &TestApp) {
    let (_, owner, license) = active_license(app, "file-refused").await;
    let key = key_of(&license);
    let id = license["id"].as_str().unwrap().to_owned();
    let ask = |fingerprint: &'static str| {
        let key = key.clone();
        async move {
            public_post(
                app,
                "/v1/license-files",
                json!({"registration_key": key, "fingerprint": fingerprint}),
            )
            .await
        }
    };
    ask("host-1")
        .await
        .assert_problem(StatusCode::CONFLICT, "fingerprint_not_registered");
    public_post(
        app,
        "/v1/license-files",
        json!({"registration_key": "unknown-key-123456", "fingerprint": "host-1"}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    public_post(app, "/v1/license-files", json!({"registration_key": key}))
        .await
        .assert_invalid_field("fingerprint");

    public_post(
        app,
        "/v1/registrations",
        json!({"registration_key": key, "fingerprint": "host-1"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    ask("host-1").await.assert_status(StatusCode::CREATED);
    app.post(&format!("/v1/licenses/{id}/disable"), &owner, json!({}))
        .await
        .assert_status(StatusCode::OK);
    let refused = ask("host-1").await;
    refused.assert_problem(StatusCode::CONFLICT, "license_not_valid");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("SUSPENDED")
    );
    app.delete(&format!("/v1/licenses/{id}"), &owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    ask("host-1")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

db_test!(
    files_verify_and_break_when_changed,
    files_only_for_valid_registered_machines
);

//! The configuration's layers and bounds.

use super::*;

#[test]
fn drafts_need_a_model_with_a_base_url_and_keep_the_key_out_of_debug() {
    let mut c = Config::default();
    c.drafts.base_url = Some("http://127.0.0.1:8081/v1".into());
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("drafts.model"), "{e}");
    c.drafts.model = Some("gpt-4o-mini".into());
    c.drafts.api_key = Some(Secret("sk-very-secret".into()));
    c.validate().unwrap();
    assert!(!format!("{c:?}").contains("sk-very-secret"));
    c.drafts.api_key = Some(Secret("sk bad\nkey".into()));
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("drafts.api_key") && !e.contains("bad"), "{e}");
    c.drafts.api_key = Some(Secret("sk-very-secret".into()));
    c.drafts.base_url = Some("ftp://x/v1".into());
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("drafts.base_url")
    );
    c.drafts.base_url = None;
    c.drafts.timeout_secs = 0;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("drafts.timeout_secs")
    );
    c.drafts.timeout_secs = 30;
    c.drafts.max_completion_tokens = 1;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("drafts.max_completion_tokens"), "{e}");
}

#[test]
fn defaults_are_valid() {
    Config::default().validate().unwrap();
}

#[test]
fn web_tile_url_must_be_an_http_template() {
    let mut c = Config::default();
    c.web.tile_url = "http://127.0.0.1:9000/{z}/{x}/{y}.png".into();
    c.validate().unwrap();
    for bad in [
        "javascript:alert(1)//{z}/{x}/{y}",
        "https://tiles.example/{z}/{x}.png",
        "https://a;b/{z}/{x}/{y}.png",
    ] {
        c.web.tile_url = bad.into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("web.tile_url"), "{bad}: {e}");
    }
}

#[test]
fn rooms_persist_in_the_embedded_file_unless_memory_is_asked_for() {
    assert_eq!(
        Config::default().ephemeral.backend,
        EphemeralBackend::Embedded
    );
    let dir = std::env::temp_dir().join(format!("wagu-cfg3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("memory.toml");
    std::fs::write(&f, "[ephemeral]\nbackend = \"memory\"\n").unwrap();
    let c = Config::load(Some(&f), FlagOverrides::default()).unwrap();
    assert_eq!(c.ephemeral.backend, EphemeralBackend::Memory);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_values_name_the_setting() {
    let dir = std::env::temp_dir().join(format!("wagu-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[limits]\nmax_participants = \"many\"\n").unwrap();
    let e = Config::load(Some(&f), FlagOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_participants"), "{e}");
    std::fs::write(&f, "[limits]\nmax_participants = 0\n").unwrap();
    let e = Config::load(Some(&f), FlagOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("limits.max_participants"), "{e}");
    std::fs::write(&f, "[limits]\nmax_partcipants = 3\n").unwrap();
    let e = Config::load(Some(&f), FlagOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_partcipants"), "{e}");
    std::fs::write(&f, "[ephemeral]\nbackend = \"redis\"\n").unwrap();
    let e = Config::load(Some(&f), FlagOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ephemeral.redis_url"), "{e}");
    std::fs::write(&f, "[ephemeral]\ncheckpoint_ms = 0\n").unwrap();
    let e = Config::load(Some(&f), FlagOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ephemeral.checkpoint_ms"), "{e}");
    let e = Config::load(Some(&dir.join("missing.toml")), FlagOverrides::default()).unwrap_err();
    assert!(e.to_string().contains("does not exist"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn social_providers_come_from_presets_in_the_file_and_bad_ones_name_the_setting() {
    let dir = std::env::temp_dir().join(format!("wagu-cfg4-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("social.toml");
    std::fs::write(
        &f,
        "[[auth.oidc]]\nname = \"naver\"\npreset = \"naver\"\nclient_id = \"a\"\n\
         client_secret = \"b\"\n\n[[auth.oidc]]\nname = \"kakao\"\npreset = \"kakao\"\n\
         client_id = \"c\"\nclient_secret = \"d\"\n[auth.oidc.profile]\nname = \"/name\"\n",
    )
    .unwrap();
    let c = Config::load(Some(&f), FlagOverrides::default()).unwrap();
    assert_eq!(c.auth.oidc.len(), 2);
    assert_eq!(c.auth.oidc[0].preset, Some(Preset::Naver));
    assert_eq!(c.auth.oidc[1].profile.name.as_deref(), Some("/name"));
    for (toml, setting) in [
        ("name = \"x\"\npreset = \"line\"", "preset"),
        (
            "name = \"x\"\nkind = \"oauth2\"",
            "auth.oidc.authorization_endpoint",
        ),
        (
            "name = \"x\"\npreset = \"google\"\nprofile_endpoint = \"https://x.example/me\"",
            "auth.oidc.kind",
        ),
        (
            "name = \"x\"\npreset = \"google\"\n[auth.oidc.profile]\nsubject = \"sub\"",
            "auth.oidc.profile.subject",
        ),
    ] {
        std::fs::write(
            &f,
            format!("[[auth.oidc]]\nclient_id = \"a\"\nclient_secret = \"b\"\n{toml}\n"),
        )
        .unwrap();
        let e = Config::load(Some(&f), FlagOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(setting), "{toml}: {e}");
    }
    std::fs::write(
        &f,
        "[[auth.oidc]]\nname = \"g\"\npreset = \"google\"\nclient_id = \"a\"\nclient_secret = \"b\"\n\
         [[auth.oidc]]\nname = \"g\"\npreset = \"kakao\"\nclient_id = \"a\"\nclient_secret = \"b\"\n",
    )
    .unwrap();
    let e = Config::load(Some(&f), FlagOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("used by two providers"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn only_setting_variables_are_read() {
    assert!(is_setting("LIMITS__MAX_ROOMS"));
    assert!(is_setting("listen"));
    assert!(!is_setting("CACHE_DIR"));
    assert!(!is_setting("TEST_REDIS_URL"));
}

#[test]
fn flags_override_the_file() {
    let dir = std::env::temp_dir().join(format!("wagu-cfg2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("ok.toml");
    std::fs::write(&f, "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\n").unwrap();
    let c = Config::load(
        Some(&f),
        FlagOverrides {
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(c.listen.port(), 9100);
    assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    std::fs::remove_dir_all(dir).unwrap();
}

use chrono::Utc;

use super::*;

fn setting(on: bool) -> Option<Setting> {
    Some(Setting { on, actor: "ops@example".into(), reason: "test".into(), changed_at: Utc::now() })
}

fn flags(overrides: &str) -> Flags {
    Flags::with_overrides("flags-test", parse_overrides(overrides).unwrap())
}

#[test]
fn default_is_on() {
    let f = flags("");
    assert_eq!(f.decide("ventures", Some("t1")), Decision { enabled: true, source: Source::Default });
    assert!(!f.paused("ventures") && !f.has_tenant_rules("ventures"));
}

#[test]
fn precedence_is_override_then_panic_then_tenant_then_global() {
    let f = flags("");
    f.apply_flag("ventures".into(), None, setting(false));
    assert_eq!(f.decide("ventures", Some("t1")).source, Source::Global);
    assert!(f.paused("ventures"), "off globally with no tenant on: the whole integration waits");
    f.apply_flag("ventures".into(), Some("t1".into()), setting(true));
    assert_eq!(f.decide("ventures", Some("t1")), Decision { enabled: true, source: Source::Tenant });
    assert!(!f.enabled("ventures", Some("t2")));
    assert!(!f.paused("ventures") && f.has_tenant_rules("ventures"), "t1 flows, so the others are held rather than paused");
    f.apply_panic("ventures".into(), setting(true).unwrap());
    assert_eq!(f.decide("ventures", Some("t1")), Decision { enabled: false, source: Source::Panic });
    assert!(!f.holds("ventures", "t1"), "panic mode is the breaker's to probe through, never a reason to hold");
    let o = flags("ventures@t1=off, ventures=on");
    o.apply_panic("ventures".into(), setting(true).unwrap());
    o.apply_flag("ventures".into(), Some("t2".into()), setting(false));
    assert_eq!(o.decide("ventures", Some("t1")), Decision { enabled: false, source: Source::EnvironmentOverride });
    assert_eq!(o.decide("ventures", Some("t2")), Decision { enabled: true, source: Source::EnvironmentOverride });
    assert!(o.enabled("firestore", Some("t1")), "other integrations are untouched");
}

#[test]
fn clearing_a_flag_falls_back_to_the_next_rule() {
    let f = flags("");
    f.apply_flag("firestore".into(), Some("t1".into()), setting(false));
    assert!(f.holds("firestore", "t1") && !f.holds("firestore", "t2") && !f.paused("firestore"));
    f.apply_flag("firestore".into(), Some("t1".into()), None);
    assert!(f.enabled("firestore", Some("t1")) && !f.has_tenant_rules("firestore"));
}

#[test]
fn overrides_parse_and_reject_garbage() {
    let parsed = parse_overrides("ventures=off, firestore@t2=on,").unwrap();
    assert_eq!(parsed.get(&("ventures".to_string(), None)), Some(&false));
    assert_eq!(parsed.get(&("firestore".to_string(), Some("t2".to_string()))), Some(&true));
    for bad in ["ventures", "ventures=maybe", "ventures@=on", "=on"] {
        assert!(parse_overrides(bad).is_err(), "{bad}");
    }
}

#[test]
fn env_override_off_pauses_unless_a_tenant_override_is_on() {
    let f = flags("qbo=off");
    f.apply_flag("qbo".into(), Some("t1".into()), setting(true));
    assert!(f.paused("qbo"), "a tenant flag cannot beat the environment");
    let g = flags("qbo=off,qbo@t1=on");
    assert!(!g.paused("qbo") && g.enabled("qbo", Some("t1")) && g.holds("qbo", "t2"));
}

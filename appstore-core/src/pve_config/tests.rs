//! Round trips of real and hostile container configs.

use super::*;

const FIXTURES: &[(&str, &str)] = &[
    (
        "plain",
        include_str!("../../test_data/pve_config/plain.conf"),
    ),
    (
        "description",
        include_str!("../../test_data/pve_config/description.conf"),
    ),
    (
        "raw_lxc_gpu",
        include_str!("../../test_data/pve_config/raw_lxc_gpu.conf"),
    ),
    (
        "devices_mp",
        include_str!("../../test_data/pve_config/devices_mp.conf"),
    ),
    (
        "pending",
        include_str!("../../test_data/pve_config/pending.conf"),
    ),
    (
        "snapshots",
        include_str!("../../test_data/pve_config/snapshots.conf"),
    ),
    ("full", include_str!("../../test_data/pve_config/full.conf")),
];

fn fixture(name: &str) -> &'static str {
    FIXTURES
        .iter()
        .find_map(|(fixture_name, text)| (*fixture_name == name).then_some(*text))
        .unwrap_or_else(|| panic!("no fixture named {name}"))
}

fn parse(text: &str) -> PveConfig {
    PveConfig::parse(text).unwrap_or_else(|err| panic!("parse failed: {err}\n{text}"))
}

/// Parses `input` and checks that writing it back yields `expected`,
/// and that the written text is itself a fixed point.
fn check(input: &str, expected: &str) {
    let config = parse(input);
    let written = config.to_text();
    assert_eq!(written, expected, "input:\n{input}");
    let reparsed = parse(&written);
    assert_eq!(reparsed.to_text(), written, "canonical form is not stable");
}

fn check_error(input: &str, line: usize, message_part: &str) {
    match PveConfig::parse(input) {
        Ok(config) => panic!("expected an error, parsed {config:?} from {input:?}"),
        Err(err) => {
            assert_eq!(err.line, line, "wrong line for {input:?}: {err}");
            assert!(
                err.message.contains(message_part),
                "message {:?} lacks {message_part:?}",
                err.message
            );
        }
    }
}

fn check_description(text: &str, encoded_lines: &[&str]) {
    let mut config = PveConfig::default();
    config.current_mut().set_description(text);
    let expected: String = encoded_lines
        .iter()
        .flat_map(|line| ["#", line, "\n"])
        .collect();
    assert_eq!(config.to_text(), expected, "encoding {text:?}");
    let reparsed = parse(&expected);
    assert_eq!(
        reparsed.current().description(),
        text,
        "decoding {expected:?}"
    );
}

#[test]
fn every_fixture_round_trips_byte_exactly() {
    for (name, text) in FIXTURES {
        assert_eq!(&parse(text).to_text(), text, "fixture {name}");
    }
}

#[test]
fn plain_config_lists_options_sorted_without_extras() {
    let config = parse(fixture("plain"));
    let current = config.current();
    assert_eq!(current.get("hostname"), Some("debian-web"));
    assert_eq!(current.get("tags"), Some("appstore;web"));
    assert_eq!(current.get("lxc.mount.entry"), None);
    assert_eq!(current.description(), "");
    assert_eq!(current.raw_lxc().count(), 0);
    let keys: Vec<&str> = current.keys().map(|(k, _)| k).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
    assert_eq!(keys.first(), Some(&"arch"));
    assert!(config.pending().is_none());
    assert_eq!(config.snapshot_names().count(), 0);
}

#[test]
fn description_fixture_decodes_non_ascii_colons_and_percent_signs() {
    let config = parse(fixture("description"));
    assert_eq!(
        config.current().description(),
        "# Nextcloud: Dateiablage für das Büro\n\
         \n\
         Verwaltet von **PVE App Store** – bitte nicht manuell ändern.\n\
         Speicher: 80% belegt (Kontingent 200 GiB)\n\
         Web-UI: https://cloud.example.lan:8443/\n\
         Zuständig: Jörg Weiß 🚀"
    );
    assert_eq!(config.current().get("hostname"), Some("nextcloud"));
}

#[test]
fn description_is_encoded_like_pve_and_decodes_to_the_same_text() {
    let cases: &[(&str, &[&str])] = &[
        ("plain text", &["plain text"]),
        ("key: value", &["key%3A value"]),
        ("Grüße", &["Gr%C3%BC%C3%9Fe"]),
        ("rocket 🚀", &["rocket %F0%9F%9A%80"]),
        ("tab\there", &["tab%09here"]),
        ("del\x7f", &["del%7F"]),
        ("100% sure", &["100% sure"]),
        ("trailing %", &["trailing %"]),
        ("50%3A is not a colon", &["50%253A is not a colon"]),
        ("%%41", &["%%2541"]),
        ("# heading", &["# heading"]),
        ("first\n\nthird", &["first", "", "third"]),
        ("\nleading blank", &["", "leading blank"]),
        ("  indented", &["  indented"]),
        ("cr\rinside", &["cr%0Dinside"]),
    ];
    for (text, encoded) in cases {
        check_description(text, encoded);
    }
}

#[test]
fn description_decoding_accepts_lowercase_and_incomplete_escapes() {
    let cases = [
        ("#a%3ab", "a:b"),
        ("#100%", "100%"),
        ("#%4", "%4"),
        ("#%zz", "%zz"),
        ("#%C3%BC", "ü"),
        ("#%FF", "\u{fffd}"),
        ("#unescaped ü", "unescaped ü"),
    ];
    for (line, decoded) in cases {
        assert_eq!(parse(line).current().description(), decoded, "{line}");
    }
}

#[test]
fn set_description_drops_trailing_newlines_and_empty_text_removes_it() {
    let mut config = parse(fixture("pending"));
    config.current_mut().set_description("one\ntwo\n\n");
    assert_eq!(config.current().description(), "one\ntwo");
    assert!(config.to_text().starts_with("#one\n#two\narch: amd64\n"));
    config.current_mut().set_description("");
    assert!(config.to_text().starts_with("arch: amd64\n"));
}

#[test]
fn non_canonical_input_is_written_in_canonical_form() {
    let cases = [
        // Unsorted keys.
        (
            "memory: 512\narch: amd64\nhostname: ct\n",
            "arch: amd64\nhostname: ct\nmemory: 512\n",
        ),
        // Description lines between options move to the top.
        (
            "arch: amd64\n#first\nmemory: 512\n#second\n",
            "#first\n#second\narch: amd64\nmemory: 512\n",
        ),
        // Raw LXC lines before regular options move after them.
        (
            "lxc.apparmor.profile: unconfined\nmemory: 512\n",
            "memory: 512\nlxc.apparmor.profile: unconfined\n",
        ),
        // No trailing newline, extra blank lines, missing separator line.
        (
            "\n\narch: amd64\n\n\nmemory: 512\n[snap1]\nsnaptime: 1\n\n\n",
            "arch: amd64\nmemory: 512\n\n[snap1]\nsnaptime: 1\n",
        ),
        ("arch: amd64", "arch: amd64\n"),
        // CRLF line endings.
        ("arch: amd64\r\nmemory: 512\r\n", "arch: amd64\nmemory: 512\n"),
        // Missing or extra whitespace after the separator.
        (
            "cores:2\nmemory:    512\n",
            "cores: 2\nmemory: 512\n",
        ),
        // Trailing empty description lines are dropped.
        ("#text\n#\n#\narch: amd64\n", "#text\narch: amd64\n"),
        // Legacy inline description option becomes a comment.
        (
            "description: old%3A style\narch: amd64\n",
            "#old%3A style\narch: amd64\n",
        ),
        // Lower-case pending header, pending after snapshots, unsorted snapshots.
        (
            "arch: amd64\n\n[snap2]\nparent: snap1\n\n[snap1]\nsnaptime: 1\n\n[PVE:PENDING]\ncores: 2\n",
            "arch: amd64\n\n[pve:pending]\ncores: 2\n\n[snap1]\nsnaptime: 1\n\n[snap2]\nparent: snap1\n",
        ),
        // An empty pending section is dropped.
        ("arch: amd64\n\n[pve:pending]\n", "arch: amd64\n"),
        // Later duplicates win, as in Proxmox VE.
        ("memory: 512\nmemory: 1024\n", "memory: 1024\n"),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
}

#[test]
fn set_inserts_in_sorted_position_and_replaces_existing_values() {
    let mut config = parse("arch: amd64\nmemory: 512\nswap: 512\nlxc.idmap: u 0 100000 65536\n");
    let current = config.current_mut();
    current.set("memory", "2048");
    current.set("hostname", "web");
    current.set("unprivileged", "1");
    current.set("cores", "2");
    assert_eq!(current.get("memory"), Some("2048"));
    assert_eq!(
        config.to_text(),
        "arch: amd64\ncores: 2\nhostname: web\nmemory: 2048\nswap: 512\nunprivileged: 1\n\
         lxc.idmap: u 0 100000 65536\n"
    );
}

#[test]
fn options_sort_bytewise_like_perl() {
    let mut section = ConfigSection::default();
    for key in ["mp2", "mp10", "mp1", "net0", "memory", "dev0"] {
        section.set(key, "x");
    }
    let keys: Vec<&str> = section.keys().map(|(k, _)| k).collect();
    assert_eq!(keys, ["dev0", "memory", "mp1", "mp10", "mp2", "net0"]);
}

#[test]
fn remove_returns_the_old_value_and_drops_the_line() {
    let mut config = parse(fixture("plain"));
    assert_eq!(
        config.current_mut().remove("tags"),
        Some("appstore;web".to_owned())
    );
    assert_eq!(config.current_mut().remove("tags"), None);
    let expected = fixture("plain").replace("tags: appstore;web\n", "");
    assert_eq!(config.to_text(), expected);
}

#[test]
fn try_set_rejects_entries_that_would_not_round_trip() {
    let mut section = ConfigSection::default();
    let bad_keys = [
        "",
        "Memory",
        "1net",
        "lxc.foo",
        "net-0",
        "description",
        "a b",
    ];
    for key in bad_keys {
        assert_eq!(
            section.try_set(key, "1"),
            Err(InvalidEntry::Key(key.to_owned())),
            "{key:?}"
        );
    }
    for value in ["", " leading", "two\nlines", "cr\r"] {
        assert!(
            matches!(
                section.try_set("hostname", value),
                Err(InvalidEntry::Value { .. })
            ),
            "{value:?}"
        );
    }
    assert_eq!(section.try_set("hostname", "ok trailing "), Ok(()));
    assert_eq!(section.keys().count(), 1);
}

#[test]
#[should_panic(expected = "invalid option key")]
fn set_panics_on_invalid_key() {
    ConfigSection::default().set("Bad", "1");
}

#[test]
fn raw_lxc_lines_keep_order_repeats_and_separators() {
    use RawLxcSeparator::{Colon, Equals};
    let config = parse(fixture("raw_lxc_gpu"));
    let entries: Vec<(&str, &str, RawLxcSeparator)> = config.current().raw_lxc_entries().collect();
    assert_eq!(
        entries,
        [
            ("lxc.cgroup2.devices.allow", "c 226:* rwm", Colon),
            (
                "lxc.mount.entry",
                "/dev/dri dev/dri none bind,optional,create=dir",
                Colon
            ),
            ("lxc.cgroup2.devices.allow", "c 195:* rwm", Equals),
            ("lxc.cgroup2.devices.allow", "c 509:* rwm", Equals),
            (
                "lxc.mount.entry",
                "/dev/nvidia0 dev/nvidia0 none bind,optional,create=file",
                Equals
            ),
            (
                "lxc.mount.entry",
                "/dev/nvidiactl dev/nvidiactl none bind,optional,create=file",
                Equals
            ),
            (
                "lxc.mount.entry",
                "/dev/nvidia-uvm dev/nvidia-uvm none bind,optional,create=file",
                Colon
            ),
            ("lxc.apparmor.profile", "unconfined", Colon),
        ]
    );
    let plain: Vec<(&str, &str)> = config.current().raw_lxc().collect();
    assert_eq!(plain[0], ("lxc.cgroup2.devices.allow", "c 226:* rwm"));
    assert_eq!(config.current().get("lxc.apparmor.profile"), None);
}

#[test]
fn raw_lxc_spacing_variants_and_empty_values_normalise() {
    let cases = [
        ("lxc.cap.drop:\n", "lxc.cap.drop: \n"),
        ("lxc.cap.drop: \n", "lxc.cap.drop: \n"),
        ("lxc.cap.drop =\n", "lxc.cap.drop = \n"),
        ("lxc.init.cmd=/sbin/init\n", "lxc.init.cmd = /sbin/init\n"),
        (
            "lxc.init.cmd\t=  /sbin/init  \n",
            "lxc.init.cmd = /sbin/init\n",
        ),
        ("lxc.environment: A=b=c\n", "lxc.environment: A=b=c\n"),
        (
            "lxc.prlimit.nofile: 1024:2048\n",
            "lxc.prlimit.nofile: 1024:2048\n",
        ),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
}

#[test]
fn push_and_remove_raw_lxc_edit_exact_entries() {
    let mut config = parse(fixture("plain"));
    let current = config.current_mut();
    current.push_raw_lxc("lxc.cgroup2.devices.allow", "c 226:* rwm");
    current.push_raw_lxc(
        "lxc.mount.entry",
        "/dev/dri dev/dri none bind,optional,create=dir",
    );
    current.push_raw_lxc("lxc.cgroup2.devices.allow", "c 226:128 rwm");
    let expected = format!(
        "{}lxc.cgroup2.devices.allow: c 226:* rwm\n\
         lxc.mount.entry: /dev/dri dev/dri none bind,optional,create=dir\n\
         lxc.cgroup2.devices.allow: c 226:128 rwm\n",
        fixture("plain")
    );
    assert_eq!(config.to_text(), expected);

    let current = config.current_mut();
    assert!(current.remove_raw_lxc("lxc.cgroup2.devices.allow", "c 226:* rwm"));
    assert!(!current.remove_raw_lxc("lxc.cgroup2.devices.allow", "c 226:* rwm"));
    assert!(!current.remove_raw_lxc("lxc.mount.entry", "/dev/dri"));
    let left: Vec<(&str, &str)> = current.raw_lxc().collect();
    assert_eq!(
        left,
        [
            (
                "lxc.mount.entry",
                "/dev/dri dev/dri none bind,optional,create=dir"
            ),
            ("lxc.cgroup2.devices.allow", "c 226:128 rwm"),
        ]
    );
}

#[test]
fn remove_raw_lxc_removes_every_duplicate_and_keeps_other_separators() {
    let mut config = parse("lxc.a = 1\nlxc.b: 2\nlxc.a: 1\nlxc.a = 3\n");
    assert!(config.current_mut().remove_raw_lxc("lxc.a", "1"));
    assert_eq!(config.to_text(), "lxc.b: 2\nlxc.a = 3\n");
}

#[test]
fn try_push_raw_lxc_rejects_bad_keys_and_values() {
    let mut section = ConfigSection::default();
    for key in [
        "cgroup2.devices.allow",
        "lxc.",
        "lxc.Mount",
        "lxc.mount entry",
    ] {
        assert_eq!(
            section.try_push_raw_lxc(key, "x"),
            Err(InvalidEntry::RawLxcKey(key.to_owned())),
            "{key:?}"
        );
    }
    for value in [" x", "x ", "a\nb"] {
        assert!(
            matches!(
                section.try_push_raw_lxc("lxc.cap.drop", value),
                Err(InvalidEntry::Value { .. })
            ),
            "{value:?}"
        );
    }
    assert_eq!(section.try_push_raw_lxc("lxc.cap.drop", ""), Ok(()));
    assert_eq!(section.raw_lxc().count(), 1);
}

#[test]
fn pending_section_exposes_changes_and_delete_list() {
    let config = parse(fixture("pending"));
    let pending = config.pending().unwrap_or_else(|| panic!("no pending"));
    assert_eq!(pending.get("delete"), Some("mp1,nameserver"));
    assert_eq!(pending.get("features"), Some("fuse=1,nesting=1"));
    assert_eq!(config.current().get("features"), Some("nesting=1"));
    assert_eq!(config.current().get("delete"), None);
    assert_eq!(
        config.current().description(),
        "Vaultwarden password manager"
    );

    let full = parse(fixture("full"));
    let pending = full.pending().unwrap_or_else(|| panic!("no pending"));
    assert_eq!(pending.get("delete"), Some("swap"));
    let raw: Vec<(&str, &str)> = pending.raw_lxc().collect();
    assert_eq!(raw, [("lxc.cgroup2.devices.allow", "c 226:* rwm")]);
}

#[test]
fn snapshots_are_found_by_name_with_their_own_options() {
    let config = parse(fixture("snapshots"));
    let names: Vec<&str> = config.snapshot_names().collect();
    assert_eq!(names, ["initial", "snap1", "snap2"]);
    assert_eq!(config.current().get("parent"), Some("snap2"));

    let cases = [
        ("initial", None, "1712345678", "1"),
        ("snap1", Some("initial"), "1718003456", "2"),
        ("snap2", Some("snap1"), "1721290311", "2"),
    ];
    for (name, parent, snaptime, cores) in cases {
        let snap = config
            .snapshot(name)
            .unwrap_or_else(|| panic!("missing snapshot {name}"));
        assert_eq!(snap.get("parent"), parent, "{name}");
        assert_eq!(snap.get("snaptime"), Some(snaptime), "{name}");
        assert_eq!(snap.get("cores"), Some(cores), "{name}");
    }
    assert_eq!(
        config.snapshot("snap1").map(ConfigSection::description),
        Some("Initial state, before upgrading to Debian 12: stable ✔")
    );
    assert!(config.snapshot("SNAP1").is_none());
    assert!(config.snapshot("pve:pending").is_none());
    assert!(config.pending().is_none());
}

#[test]
fn snapshot_names_keep_file_order_but_are_written_sorted() {
    let config = parse("arch: amd64\n\n[zeta]\nsnaptime: 2\n\n[alpha]\nsnaptime: 1\n");
    let names: Vec<&str> = config.snapshot_names().collect();
    assert_eq!(names, ["zeta", "alpha"]);
    assert_eq!(
        config.to_text(),
        "arch: amd64\n\n[alpha]\nsnaptime: 1\n\n[zeta]\nsnaptime: 2\n"
    );
}

#[test]
fn repeated_snapshot_section_replaces_the_earlier_one() {
    let config = parse("[snap1]\ncores: 1\nmemory: 512\n\n[snap1]\ncores: 2\n");
    assert_eq!(config.snapshot_names().collect::<Vec<_>>(), ["snap1"]);
    let snap = config
        .snapshot("snap1")
        .unwrap_or_else(|| panic!("missing"));
    assert_eq!(snap.get("cores"), Some("2"));
    assert_eq!(snap.get("memory"), None);
}

#[test]
fn descriptions_belong_to_their_own_section() {
    let config = parse(fixture("full"));
    assert_eq!(
        config.current().description(),
        "Frigate NVR, installed by PVE App Store\nKamera-Streams: 4 × 1080p"
    );
    assert_eq!(config.pending().map(ConfigSection::description), Some(""));
    assert_eq!(
        config
            .snapshot("pre-upgrade")
            .map(ConfigSection::description),
        Some("Working config, 100% stable")
    );
}

#[test]
fn next_free_index_finds_the_lowest_gap() {
    let devices = parse(fixture("devices_mp"));
    let current = devices.current();
    let cases = [("dev", 2), ("mp", 2), ("net", 1), ("unused", 1), ("foo", 0)];
    for (prefix, expected) in cases {
        assert_eq!(current.next_free_index(prefix), expected, "{prefix}");
    }

    let gapped = parse("mp0: a\nmp2: b\nmp10: c\n");
    assert_eq!(gapped.current().next_free_index("mp"), 1);
    let pending = parse(fixture("pending"));
    assert_eq!(pending.current().next_free_index("mp"), 0);
    assert_eq!(pending.pending().map(|p| p.next_free_index("mp")), Some(1));
}

#[test]
fn devices_and_mount_points_parse_as_regular_options() {
    let config = parse(fixture("devices_mp"));
    let current = config.current();
    assert_eq!(current.get("dev0"), Some("/dev/dri/card0,gid=44"));
    assert_eq!(
        current.get("dev1"),
        Some("/dev/dri/renderD128,gid=104,mode=0660")
    );
    assert_eq!(
        current.get("mp0"),
        Some("local-lvm:vm-120-disk-1,mp=/srv/photos,backup=1,size=500G")
    );
}

#[test]
fn adding_a_device_slot_round_trips() {
    let mut config = parse(fixture("devices_mp"));
    let slot = config.current().next_free_index("dev");
    config
        .current_mut()
        .set(&format!("dev{slot}"), "/dev/dri/renderD129,gid=104");
    let text = config.to_text();
    assert!(text.contains(
        "dev1: /dev/dri/renderD128,gid=104,mode=0660\ndev2: /dev/dri/renderD129,gid=104\n"
    ));
    assert_eq!(parse(&text), config);
}

#[test]
fn parse_errors_carry_the_line_number() {
    let cases = [
        (
            "arch: amd64\nmemory 512\n",
            2,
            "missing ':' after key \"memory\"",
        ),
        ("arch: amd64\n\n[snap 1]\n", 3, "invalid section header"),
        ("[snap1\n", 1, "malformed section header"),
        ("arch: amd64\n[x]\n", 2, "invalid section header"),
        ("[1snap]\n", 1, "invalid section header"),
        ("[pve:other]\n", 1, "invalid section header"),
        ("[]\n", 1, "invalid section header"),
        ("arch: amd64\n  memory: 512\n", 2, "expected \"key: value\""),
        ("Memory: 512\n", 1, "expected \"key: value\""),
        ("net-0: x\n", 1, "expected \"key: value\""),
        ("memory\n", 1, "missing ':' after key \"memory\""),
        ("=value\n", 1, "expected \"key: value\""),
        (
            "arch: amd64\nlxc.mount.entry /dev/dri\n",
            2,
            "expected ':' or '='",
        ),
        ("lxc.: x\n", 1, "missing key name"),
        ("lxc.Mount: x\n", 1, "missing key name"),
        ("arch: amd64\r\n\r\nbogus\r\n", 3, "missing ':'"),
        (
            "a: 1\n\n[snap1]\nb: 2\n\n[pve:pending]\nc: 3\n! oops\n",
            8,
            "expected",
        ),
    ];
    for (input, line, message_part) in cases {
        check_error(input, line, message_part);
    }
}

#[test]
fn parse_error_display_includes_line_and_message() {
    let err = PveConfig::parse("arch: amd64\nmemory 512\n")
        .err()
        .unwrap_or_else(|| panic!("expected an error"));
    assert_eq!(err.to_string(), "line 2: missing ':' after key \"memory\"");
}

#[test]
fn empty_input_gives_an_empty_config() {
    check("", "");
    check("\n\n", "");
    let config = parse("");
    assert_eq!(config, PveConfig::default());
    assert_eq!(config.current().keys().count(), 0);
}

#[test]
fn values_keep_inner_colons_and_trailing_whitespace() {
    check(
        "rootfs: local-lvm:vm-100-disk-0,size=8G\nstartup: order=1 \n",
        "rootfs: local-lvm:vm-100-disk-0,size=8G\nstartup: order=1 \n",
    );
    let config = parse("hookscript: local:snippets/hook.pl\n");
    assert_eq!(
        config.current().get("hookscript"),
        Some("local:snippets/hook.pl")
    );
}

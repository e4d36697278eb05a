//! GPU profiles, config output for both PVE syntaxes, policy, ranking and gating.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use appstore_core::config::GpuPolicyMode;
use appstore_core::gpu::*;
use appstore_core::manifest::{GpuProfile, GpuSpec};
use appstore_core::pve_config::PveConfig;

fn node(path: &str, kind: NodeKind, major: u32, minor: u32) -> HostNode {
    HostNode {
        path: path.into(),
        kind,
        major,
        minor,
    }
}

fn spec(gpu_yaml: &str) -> GpuSpec {
    let text = format!(
        "id: app\nname: App\ndescription: d\nversion: 1.0.0\nlxc: {{ ostemplate: debian-12 }}\nprovision: {{ script: install.sh }}\ngpu: {gpu_yaml}\n"
    );
    appstore_core::parse_manifest(&text, Some("app"))
        .unwrap()
        .gpu()
        .clone()
}

fn intel() -> Candidate {
    Candidate {
        pci_address: "0000:00:02.0".into(),
        vendor: Some(appstore_core::manifest::GpuVendor::Intel),
        nodes: vec![
            node("/dev/dri/card0", NodeKind::Card, 226, 0),
            node("/dev/dri/renderD128", NodeKind::Render, 226, 128),
        ],
        boot_vga: true,
        users: 0,
    }
}

fn nvidia(addr: &str, minor: u32, users: usize) -> Candidate {
    Candidate {
        pci_address: addr.into(),
        vendor: Some(appstore_core::manifest::GpuVendor::Nvidia),
        nodes: vec![node(
            &format!("/dev/nvidia{minor}"),
            NodeKind::NvidiaGpu,
            195,
            minor,
        )],
        boot_vga: false,
        users,
    }
}

fn nvidia_shared() -> Vec<HostNode> {
    vec![
        node("/dev/nvidiactl", NodeKind::NvidiaCtl, 195, 255),
        node("/dev/nvidia-uvm", NodeKind::NvidiaUvm, 508, 0),
        node("/dev/nvidia-uvm-tools", NodeKind::NvidiaUvmTools, 508, 1),
    ]
}

const GROUPS: GroupIds = GroupIds {
    render: Some(993),
    video: Some(44),
};

#[test]
fn group_ids_come_from_getent_lines() {
    let g = GroupIds::parse_getent("video:x:44:\nrender:x:105:jellyfin\n");
    assert_eq!(
        g,
        GroupIds {
            render: Some(105),
            video: Some(44)
        }
    );
    assert_eq!(GroupIds::parse_getent("").render, None);
}

#[test]
fn dri_render_passes_only_the_render_node_with_the_containers_render_group() {
    let p = plan(GpuProfile::DriRender, &intel().nodes, &[], &GROUPS).unwrap();
    assert_eq!(
        p,
        [Passthrough {
            path: "/dev/dri/renderD128".into(),
            major: 226,
            minor: 128,
            gid: Some(993),
            mode: "0660".into()
        }]
    );
    // No render group: video owns it; neither: a clear refusal.
    let video_only = GroupIds {
        render: None,
        video: Some(44),
    };
    assert_eq!(
        plan(GpuProfile::DriRender, &intel().nodes, &[], &video_only).unwrap()[0].gid,
        Some(44)
    );
    let err = plan(
        GpuProfile::DriRender,
        &intel().nodes,
        &[],
        &GroupIds::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no `render` or `video` group"),
        "{err}"
    );
}

#[test]
fn nvidia_basic_passes_the_chosen_gpu_and_the_control_and_uvm_nodes_present() {
    let gpu = nvidia("0000:01:00.0", 1, 0);
    let p = plan(
        GpuProfile::NvidiaBasic,
        &gpu.nodes,
        &nvidia_shared(),
        &GROUPS,
    )
    .unwrap();
    let paths: Vec<&str> = p.iter().map(|x| x.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/dev/nvidia1",
            "/dev/nvidiactl",
            "/dev/nvidia-uvm",
            "/dev/nvidia-uvm-tools"
        ]
    );
    assert!(p.iter().all(|x| x.gid.is_none() && x.mode == "0666"));
    let err = plan(GpuProfile::NvidiaBasic, &gpu.nodes, &[], &GROUPS).unwrap_err();
    assert!(err.to_string().contains("/dev/nvidiactl"), "{err}");
}

#[test]
fn rocm_passes_kfd_and_the_render_node() {
    let amd = vec![node("/dev/dri/renderD129", NodeKind::Render, 226, 129)];
    let kfd = vec![node("/dev/kfd", NodeKind::Kfd, 235, 0)];
    let p = plan(GpuProfile::Rocm, &amd, &kfd, &GROUPS).unwrap();
    let paths: Vec<&str> = p.iter().map(|x| x.path.as_str()).collect();
    assert_eq!(paths, ["/dev/kfd", "/dev/dri/renderD129"]);
    assert!(plan(GpuProfile::Rocm, &amd, &[], &GROUPS)
        .unwrap_err()
        .to_string()
        .contains("/dev/kfd"));
}

#[test]
fn dev_entries_merge_idempotently_and_keep_their_slots() {
    let mut conf = PveConfig::parse("arch: amd64\ndev0: /dev/fuse\nhostname: x\n").unwrap();
    let gpu = nvidia("0000:01:00.0", 0, 0);
    let p = plan(
        GpuProfile::NvidiaBasic,
        &gpu.nodes,
        &nvidia_shared(),
        &GROUPS,
    )
    .unwrap();
    let first = merge(conf.current_mut(), &p, DeviceSyntax::DevEntries).unwrap();
    assert_eq!(first.len(), 4);
    let text = conf.to_text();
    assert!(
        text.contains(
            "dev0: /dev/fuse\ndev1: /dev/nvidia0,mode=0666\ndev2: /dev/nvidiactl,mode=0666\n"
        ),
        "{text}"
    );
    let again = merge(conf.current_mut(), &p, DeviceSyntax::DevEntries).unwrap();
    assert!(again.is_empty(), "nothing to do the second time: {again:?}");
    assert_eq!(conf.to_text(), text);
    // A changed group updates the same slot.
    let p2 = plan(GpuProfile::DriRender, &intel().nodes, &[], &GROUPS).unwrap();
    merge(conf.current_mut(), &p2, DeviceSyntax::DevEntries).unwrap();
    let other = GroupIds {
        render: Some(105),
        video: None,
    };
    let p3 = plan(GpuProfile::DriRender, &intel().nodes, &[], &other).unwrap();
    assert_eq!(
        edits(conf.current(), &p3, DeviceSyntax::DevEntries),
        [Edit::Dev {
            index: 5,
            value: "/dev/dri/renderD128,gid=105,mode=0660".into()
        }]
    );
}

#[test]
fn raw_lxc_lines_for_older_releases_merge_and_detach() {
    assert_eq!(DeviceSyntax::for_release(8, 0), DeviceSyntax::RawLxc);
    assert_eq!(DeviceSyntax::for_release(8, 1), DeviceSyntax::DevEntries);
    let mut conf = PveConfig::parse("arch: amd64\n").unwrap();
    let p = plan(GpuProfile::DriRender, &intel().nodes, &[], &GROUPS).unwrap();
    merge(conf.current_mut(), &p, DeviceSyntax::RawLxc).unwrap();
    assert!(merge(conf.current_mut(), &p, DeviceSyntax::RawLxc)
        .unwrap()
        .is_empty());
    assert_eq!(
        conf.to_text(),
        "arch: amd64\nlxc.cgroup2.devices.allow: c 226:128 rwm\nlxc.mount.entry: /dev/dri/renderD128 dev/dri/renderD128 none bind,optional,create=file\n"
    );
    let removed = detach(conf.current_mut(), &["/dev/dri/renderD128"], &[(226, 128)]);
    assert_eq!(removed.len(), 2);
    assert_eq!(conf.to_text(), "arch: amd64\n");
}

#[test]
fn detach_removes_dev_entries_by_path_only() {
    let mut conf =
        PveConfig::parse("dev0: /dev/fuse\ndev1: path=/dev/dri/renderD128,gid=993,mode=0660\n")
            .unwrap();
    assert_eq!(
        detach(conf.current_mut(), &["/dev/dri/renderD128"], &[]),
        ["dev1"]
    );
    assert_eq!(conf.to_text(), "dev0: /dev/fuse\n");
}

#[test]
fn policy_allowlist_and_none() {
    let mut policy = GpuPolicy {
        mode: GpuPolicyMode::Allowlist,
        allowlist: vec!["0000:01:00.0".into()],
        allow_privileged: false,
    };
    assert!(policy.allows("0000:01:00.0") && !policy.allows("0000:00:02.0"));
    policy.mode = GpuPolicyMode::None;
    assert!(!policy.allows("0000:01:00.0"));
}

#[test]
fn auto_select_prefers_the_least_used_then_a_card_that_is_not_the_boot_display() {
    let s = spec("{ supported: [intel, nvidia] }");
    let policy = GpuPolicy::default();
    let gpus = vec![
        intel(),
        nvidia("0000:01:00.0", 0, 2),
        nvidia("0000:02:00.0", 1, 0),
    ];
    let ranked = rank(&s, &policy, &gpus, &nvidia_shared());
    let order: Vec<(&str, GpuProfile)> = ranked
        .iter()
        .map(|c| (c.pci_address.as_str(), c.profile))
        .collect();
    assert_eq!(
        order,
        [
            ("0000:02:00.0", GpuProfile::NvidiaBasic),
            ("0000:00:02.0", GpuProfile::DriRender),
            ("0000:01:00.0", GpuProfile::NvidiaBasic),
        ]
    );
    // An app that only supports Intel never gets the NVIDIA cards.
    let intel_only = spec("{ supported: [intel] }");
    assert_eq!(rank(&intel_only, &policy, &gpus, &nvidia_shared()).len(), 1);
}

#[test]
fn gating_blocks_required_apps_without_a_fitting_allowed_gpu_and_names_the_fix() {
    let required = spec("{ supported: [nvidia], required: true }");
    let policy = GpuPolicy::default();
    let err = decide(
        &required,
        &policy,
        &GpuRequest::None,
        &[intel()],
        &[],
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("requires a GPU (nvidia)"), "{err}");
    // Required and nothing asked: the best is picked.
    let got = decide(
        &required,
        &policy,
        &GpuRequest::None,
        &[nvidia("0000:01:00.0", 0, 0)],
        &nvidia_shared(),
        false,
    )
    .unwrap();
    assert_eq!(got[0].pci_address, "0000:01:00.0");
    // Optional and nothing asked: none.
    let optional = spec("{ supported: [intel] }");
    assert!(decide(
        &optional,
        &policy,
        &GpuRequest::None,
        &[intel()],
        &[],
        false
    )
    .unwrap()
    .is_empty());
    // A named device that does not fit, is unknown, or is not allowed.
    let ask = |pci: &str| GpuRequest::Devices {
        pci_addresses: vec![pci.into()],
    };
    let e = decide(
        &optional,
        &policy,
        &ask("0000:01:00.0"),
        &[intel(), nvidia("0000:01:00.0", 0, 0)],
        &nvidia_shared(),
        false,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("the app supports intel, and this GPU is nvidia"),
        "{e}"
    );
    // Optional app, best asked for, nothing fits: not "requires".
    let e = decide(
        &optional,
        &policy,
        &GpuRequest::Auto,
        &[nvidia("0000:01:00.0", 0, 0)],
        &nvidia_shared(),
        false,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("no GPU on this host fits this app (intel)"),
        "{e}"
    );
    let e = decide(
        &optional,
        &policy,
        &ask("0000:09:00.0"),
        &[intel()],
        &[],
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("no such GPU"), "{e}");
    let allow = GpuPolicy {
        mode: GpuPolicyMode::Allowlist,
        allowlist: vec![],
        allow_privileged: false,
    };
    let e = decide(
        &optional,
        &allow,
        &ask("0000:00:02.0"),
        &[intel()],
        &[],
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("gpu.allowlist"), "{e}");
    // Privileged containers only when the config allows them; policy none refuses outright.
    let e = decide(&optional, &policy, &GpuRequest::Auto, &[intel()], &[], true).unwrap_err();
    assert_eq!(e, GateError::Privileged);
    let none = GpuPolicy {
        mode: GpuPolicyMode::None,
        ..GpuPolicy::default()
    };
    assert_eq!(
        decide(&optional, &none, &GpuRequest::Auto, &[intel()], &[], false).unwrap_err(),
        GateError::PolicyNone
    );
    // An app without GPU support refuses a GPU.
    let plain = spec("{ supported: [] }");
    assert_eq!(
        decide(&plain, &policy, &GpuRequest::Auto, &[intel()], &[], false).unwrap_err(),
        GateError::NotSupported
    );
}

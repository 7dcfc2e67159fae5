//! The router's outbound and inbound decisions on arbitrary messages, through the real
//! backends, with the demo keys: S/MIME and OpenPGP partners (required, and one with header
//! protection), our own keys for opening. Every path a stranger's message takes before
//! delivery — parsing, the user-encrypted proof, sealing, opening, result-header filtering —
//! must answer, never panic. Then what the relay's worker does with one spooled message
//! besides I/O: content inspection and the DSN built from it, and the inbound result once
//! more for whatever outbound produced (a sealed copy coming back in).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use postern_core::{Address, Credential, Domain, SecureEnvelope, Standard};
use postern_router::{
    Directory, DomainPattern, Envelope, InboundRouter, Partner, PartnerPolicy, Router,
};

struct World {
    dir: Directory,
    router: Router,
    inbound: InboundRouter,
    inspector: postern_dlp::Inspector,
    rt: tokio::runtime::Runtime,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/data/");
        let read = |f: &str| std::fs::read(format!("{data}{f}")).expect("demo data");
        let mut dir = Directory::default();
        dir.our.domains.push(Domain::new("clinic.example").expect("domain"));
        dir.our.credentials = vec![
            Credential::with_secret(
                Standard::Smime,
                read("lamps-bob.encrypt.crt"),
                read("lamps-bob.decrypt.p8.pem"),
            ),
            Credential::with_secret(Standard::OpenPgp, read("bob.sec.asc"), read("bob.sec.asc")),
        ];
        dir.our.trust_anchors = vec![read("lamps-rsa-ca.pem")];
        let mut s = Partner::new(
            DomainPattern::Exact(Domain::new("smime.example").expect("domain")),
            PartnerPolicy::Required,
            vec![Standard::Smime],
        );
        s.certificates
            .insert(Standard::Smime, vec![read("lamps-bob.encrypt.crt")]);
        s.header_protection = true;
        let mut p = Partner::new(
            DomainPattern::Exact(Domain::new("openpgp.example").expect("domain")),
            PartnerPolicy::Required,
            vec![Standard::OpenPgp],
        );
        p.certificates
            .insert(Standard::OpenPgp, vec![read("alice.pub.asc")]);
        dir.partners = vec![s, p];
        let backends: Vec<Arc<dyn SecureEnvelope>> = vec![
            Arc::new(postern_smime::SmimeEnvelope::new()),
            Arc::new(postern_openpgp::OpenPgpEnvelope::new()),
        ];
        World {
            dir,
            router: Router::new(backends.clone()),
            inbound: InboundRouter::new(backends),
            inspector: postern_dlp::Inspector::new(postern_dlp::DlpPolicy::default())
                .expect("the built-in policy"),
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let rcpts = ["a@smime.example", "b@openpgp.example", "c@gmail.test"]
        .iter()
        .filter_map(|a| Address::new(a).ok())
        .collect();
    let env = Envelope {
        mail_from: Address::new("ada@clinic.example").ok(),
        rcpt_to: rcpts,
    };
    let out = w.rt.block_on(w.router.outbound(&w.dir, &env, data, None));
    let from = Address::new("gw@smime.example").ok();
    let _ = w.rt.block_on(w.inbound.inbound(&w.dir, from.as_ref(), data));
    let _ = postern_router::strip_results(data);
    for d in &out {
        if let postern_router::Disposition::Deliver { message, .. } = d {
            let _ = w.rt.block_on(w.inbound.inbound(&w.dir, from.as_ref(), message));
        }
    }
    let _ = w.inspector.inspect(data);
    let entry = postern_relay::spool::Entry::new(
        "Q1".into(),
        postern_relay::spool::Origin::Internal,
        "127.0.0.1",
        Some("ada@clinic.example".into()),
        vec![postern_relay::spool::Recipient::new("c@gmail.test".into())],
        data.len() as u64,
    );
    let reason = String::from_utf8_lossy(data.get(..data.len().min(200)).unwrap_or_default());
    let failures = [postern_relay::dsn::Failure {
        rcpt: &entry.recipients[0],
        status: "5.7.1",
        reason: &reason,
    }];
    let _ = postern_relay::dsn::build("gw.test", &entry, &failures, data, 0, "seed");
});

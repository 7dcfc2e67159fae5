//! The router's outbound and inbound decisions on arbitrary messages, through the real
//! backends, with the demo keys: S/MIME and OpenPGP partners (required, and one with header
//! protection), our own keys for opening. Every path a stranger's message takes before
//! delivery — parsing, the user-encrypted proof, sealing, opening, result-header filtering —
//! must answer, never panic.
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
    let _ = w.rt.block_on(w.router.outbound(&w.dir, &env, data, None));
    let from = Address::new("gw@smime.example").ok();
    let _ = w.rt.block_on(w.inbound.inbound(&w.dir, from.as_ref(), data));
    let _ = postern_router::strip_results(data);
});

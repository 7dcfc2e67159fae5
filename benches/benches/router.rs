//! Routing overhead per message, without cryptography: the directory lookup, the recipient
//! split, Bcc removal and the subject trigger, with a stand-in backend that "seals" by copying.
//! The reference in the same run is the cost of just parsing the message (`MessageView`), which
//! any gateway pays. Run: `cargo bench -p postern-benches --bench router`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench that cannot set up should stop

use std::sync::Arc;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion};
use postern_core::{
    Address, Domain, Error, MessageView, OpenRequest, Opened, SealRequest, SecureEnvelope, Standard,
};
use postern_router::{
    CheckedDirectory, Directory, DomainPattern, Envelope, Partner, PartnerPolicy, Router,
};

#[derive(Debug)]
struct CopyingEnvelope(Standard);

#[async_trait]
impl SecureEnvelope for CopyingEnvelope {
    fn standard(&self) -> Standard {
        self.0
    }
    fn recognises(&self, _: &MessageView<'_>) -> bool {
        false
    }
    async fn seal(&self, msg: &MessageView<'_>, _: &SealRequest<'_>) -> Result<Vec<u8>, Error> {
        Ok(msg.raw().to_vec())
    }
    async fn open(&self, _: &MessageView<'_>, _: &OpenRequest<'_>) -> Result<Opened, Error> {
        Err(Error::InvalidRequest("not used".into()))
    }
}

fn bench(c: &mut Criterion) {
    let mut dir = Directory::default();
    for i in 0..200 {
        let mut p = Partner::new(
            DomainPattern::Exact(Domain::new(&format!("partner{i}.example")).unwrap()),
            if i % 2 == 0 {
                PartnerPolicy::Required
            } else {
                PartnerPolicy::Preferred
            },
            vec![Standard::Smime, Standard::OpenPgp],
        );
        p.certificates
            .insert(Standard::Smime, vec![b"cert".to_vec()]);
        dir.partners.push(p);
    }
    dir.partners.push(Partner::new(
        DomainPattern::Subdomains(Domain::new("health.example").unwrap()),
        PartnerPolicy::TlsRequired,
        Vec::new(),
    ));
    dir.our.domains.push(Domain::new("clinic.example").unwrap());
    let router = Router::new(vec![
        Arc::new(CopyingEnvelope(Standard::Smime)),
        Arc::new(CopyingEnvelope(Standard::OpenPgp)),
    ]);
    // Checked with the bench's backends, as the gateway checks a directory before routing.
    let dir = CheckedDirectory::check(dir, router.backends(), std::time::SystemTime::now())
        .expect("the bench directory passes the check");
    let mut msg = b"From: a@clinic.example\\r\\nTo: x@partner7.example\\r\\nBcc: y@gmail.test\\r\\nSubject: [secure] results\\r\\nContent-Type: text/plain\\r\\n\\r\\n".to_vec();
    while msg.len() < 10 * 1024 {
        msg.extend_from_slice(b"Potassium 4.1 mmol/L; sodium 139 mmol/L; all in range.\\r\\n");
    }
    let envelope = Envelope {
        mail_from: Some(Address::new("a@clinic.example").unwrap()),
        rcpt_to: [
            "x@partner7.example",
            "z@partner8.example",
            "w@ward.health.example",
            "y@gmail.test",
        ]
        .iter()
        .map(|a| Address::new(a).unwrap())
        .collect(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("route-10KB-4-recipients");
    g.bench_function("parse-only-reference", |b| {
        b.iter(|| MessageView::parse(&msg).unwrap().headers().len())
    });
    g.bench_function("outbound-decision", |b| {
        b.iter(|| rt.block_on(router.outbound(&dir, &envelope, &msg, None)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The durable spool. A message is one file, `queue/ID.msg`: its envelope as one line of JSON,
//! then the data. It is written to `tmp/`, fsynced and renamed in; that rename, followed by an
//! fsync of `queue/`, is the commit point after which the SMTP client may hear 250 (two fsyncs
//! per message, as few as durability allows). Later state (per-recipient outcomes, the next
//! attempt) goes to `queue/ID.state`, which overrides the envelope line when present.
//!
//! Removal is an unlink without an fsync: if a crash undoes it, the message is delivered again
//! (at-least-once, like Postfix) — never lost. Whatever a crash leaves in `tmp/`, or a `.state`
//! without its `.msg`, was never acknowledged or is finished, and is removed at start-up.
//!
//! The running relay recycles the files of finished messages instead of unlinking them: a
//! finished `queue/ID.msg` is renamed to `tmp/ID.free` and a later message is written over it.
//! A new inode per message is the single largest cost of the spool on ext4 without a journal,
//! which skips every inode freed in the last minutes when it allocates one (25 % of the
//! relay's CPU under load on the bench machine, `perf`). Recycled files live only in `tmp/`,
//! which start-up empties: after a crash a stale directory entry could still name an inode
//! that `queue/` holds, and it must never be written over.

use std::fs::{self, File};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where a message came from, which decides how it is processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// From our mail server, going out: content inspection, then the outbound router.
    Internal,
    /// From the internet, for our domains: the inbound router.
    Public,
    /// A delivery status notification we generated.
    Bounce,
    /// Mail the portal wrote (notifications, codes, read receipts, replies): delivered as
    /// written, without routing or inspection. Only the portal makes these.
    Portal,
}

/// Where one recipient stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum RcptState {
    /// Not yet delivered; retried.
    Pending,
    /// Handed to the next hop (it answered 250).
    Delivered,
    /// Given up; a DSN was (or will be) sent.
    Bounced {
        /// Enhanced status code, e.g. `5.7.1` (written as that text).
        status: postern_core::EnhancedStatus,
        /// Why, for the DSN and the log.
        reason: String,
        /// Whether the DSN for this recipient has been queued.
        notified: bool,
    },
    /// Moved to the quarantine store (final here: release or reject happens there).
    Quarantined {
        /// The quarantine ID.
        id: String,
    },
    /// Kept for an administrator (`queue release` sends it on).
    Held {
        /// Why it is kept.
        kind: HoldKind,
        /// Why, in words.
        reason: String,
    },
}

/// Why a recipient is kept in the spool for an administrator. Stored as `portal` / `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldKind {
    /// Portal delivery, but no portal is configured: releasing it is the administrator's yes
    /// to sending it in clear.
    Portal,
    /// An internal error while deciding: releasing it retries, with content inspection.
    Error,
}

impl std::fmt::Display for HoldKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HoldKind::Portal => "portal",
            HoldKind::Error => "error",
        })
    }
}

/// One envelope recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The address as given in RCPT TO.
    pub address: String,
    /// DSN NOTIFY parameter, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    /// DSN ORCPT parameter, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
    /// Where it stands.
    pub state: RcptState,
    /// Last temporary error (for `queue show`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Recipient {
    /// A pending recipient.
    pub fn new(address: String) -> Self {
        Recipient {
            address,
            notify: None,
            orcpt: None,
            state: RcptState::Pending,
            last_error: None,
        }
    }
}

/// The envelope and state of one spooled message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Queue ID (also the file name).
    pub id: String,
    /// Which listener took it.
    pub origin: Origin,
    /// Unix seconds when it was accepted.
    pub received_at: u64,
    /// The client's address.
    pub client: String,
    /// MAIL FROM (`None`: the null reverse path).
    pub mail_from: Option<String>,
    /// DSN ENVID parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    /// DSN RET parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<String>,
    /// Every recipient with its state.
    pub recipients: Vec<Recipient>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Unix seconds of the next attempt.
    pub next_attempt: u64,
    /// Size of the data file.
    pub size: u64,
    /// An administrator released held recipients: content inspection is overridden.
    #[serde(default)]
    pub released: bool,
    /// The content verdict of the first attempt (masked values only), so that a retry does
    /// not unpack the message again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspection: Option<postern_router::Inspection>,
}

impl Entry {
    /// A new entry: received now, due now, nothing attempted.
    pub fn new(
        id: String,
        origin: Origin,
        client: &str,
        mail_from: Option<String>,
        recipients: Vec<Recipient>,
        size: u64,
    ) -> Self {
        let now = crate::util::unix_ms();
        Entry {
            id,
            origin,
            received_at: now / 1000,
            client: client.to_string(),
            mail_from,
            envid: None,
            ret: None,
            recipients,
            attempts: 0,
            next_attempt: now,
            size,
            released: false,
            inspection: None,
        }
    }

    /// Whether every recipient has a final outcome and none is held.
    pub fn is_done(&self) -> bool {
        self.recipients.iter().all(|r| {
            matches!(
                r.state,
                RcptState::Delivered | RcptState::Bounced { .. } | RcptState::Quarantined { .. }
            )
        })
    }

    /// Recipients still to be tried.
    pub fn pending(&self) -> impl Iterator<Item = &Recipient> {
        self.recipients
            .iter()
            .filter(|r| r.state == RcptState::Pending)
    }
}

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
    /// Files of finished messages to write new ones over (`None`: a tool beside the relay,
    /// which unlinks).
    recycled: Option<std::sync::Arc<std::sync::Mutex<Vec<PathBuf>>>>,
    /// fsyncs of `queue/` shared by commits running at the same time.
    commits: std::sync::Arc<DirCommits>,
}

/// Finished files kept for reuse: enough for every message in flight at once.
const RECYCLE_MAX: usize = 256;

impl Spool {
    /// Opens (creating) the spool under `root` and removes what a crash left half-written.
    pub fn open(root: &Path) -> io::Result<Self> {
        let spool = Spool {
            root: root.into(),
            recycled: Some(Default::default()),
            commits: Default::default(),
        };
        // Message bodies: the owner's alone (an existing spool is tightened too).
        for dir in [root, &spool.tmp(), &spool.queue()] {
            crate::util::private_dir(dir)?;
        }
        for e in fs::read_dir(spool.tmp())? {
            let _ = fs::remove_file(e?.path());
        }
        for e in fs::read_dir(spool.queue())? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "state") && !p.with_extension("msg").exists() {
                fs::remove_file(&p)?;
            }
        }
        Ok(spool)
    }

    /// Uses an existing spool without cleaning anything: for tools working beside a running
    /// relay, whose half-written files are not debris.
    pub fn open_existing(root: &Path) -> Self {
        Spool {
            root: root.into(),
            recycled: None,
            commits: Default::default(),
        }
    }

    /// The spool's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn queue(&self) -> PathBuf {
        self.root.join("queue")
    }

    fn msg_path(&self, id: &str) -> PathBuf {
        self.queue().join(format!("{id}.msg"))
    }

    fn state_path(&self, id: &str) -> PathBuf {
        self.queue().join(format!("{id}.state"))
    }

    /// A new queue ID: time-ordered, unique across restarts (time, counter and random bits).
    pub fn new_id() -> String {
        postern_store::new_id()
    }

    /// Writes a new message durably. When this returns `Ok`, the message survives a crash.
    pub fn accept(&self, entry: &Entry, data: &[u8]) -> io::Result<()> {
        check_id(&entry.id)?;
        let tmp = self.tmp().join(format!("{}.msg", entry.id));
        let mut head = serde_json::to_vec(entry).map_err(io::Error::other)?;
        head.push(b'\n');
        let parts: [&[u8]; 2] = [&head, data];
        // A finished message's file is written over where it waits (in tmp/, out of sight).
        let written = match self.take_recycled() {
            Some((path, f)) => {
                overwrite_synced(f, &parts)?;
                path
            }
            None => {
                let f = crate::util::private_file()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&tmp)?;
                overwrite_synced(f, &parts)?;
                tmp
            }
        };
        fs::rename(&written, self.msg_path(&entry.id))?;
        self.commits.commit(&self.queue())
    }

    /// A finished message's file (in tmp/), opened for writing over.
    fn take_recycled(&self) -> Option<(PathBuf, File)> {
        let list = self.recycled.as_ref()?;
        loop {
            let path = lock(list).pop()?;
            // Anything odd (the file gone): the next one, or a new file.
            if let Ok(f) = fs::OpenOptions::new().write(true).open(&path) {
                return Some((path, f));
            }
        }
    }

    /// Saves a changed state. Returns `false` (and writes nothing) if the message was deleted
    /// meanwhile (`queue delete`), so a worker never resurrects it.
    pub fn update(&self, entry: &Entry) -> io::Result<bool> {
        check_id(&entry.id)?;
        if !self.msg_path(&entry.id).exists() {
            return Ok(false);
        }
        let tmp = self.tmp().join(format!("{}.state", entry.id));
        let json = serde_json::to_vec_pretty(entry).map_err(io::Error::other)?;
        write_synced(&tmp, &json)?;
        fs::rename(&tmp, self.state_path(&entry.id))?;
        self.commits.commit(&self.queue())?;
        Ok(true)
    }

    /// Reads one message's state (`None`: not in the spool).
    pub fn entry(&self, id: &str) -> io::Result<Option<Entry>> {
        check_id(id)?;
        if let Some(state) = found(fs::read(self.state_path(id)))? {
            if !self.msg_path(id).exists() {
                return Ok(None);
            }
            return parse_entry(id, &state).map(Some);
        }
        let Some(f) = found(File::open(self.msg_path(id)))? else {
            return Ok(None);
        };
        let mut line = Vec::new();
        io::BufReader::new(f).read_until(b'\n', &mut line)?;
        parse_entry(id, &line).map(Some)
    }

    /// Reads one message's state and data, the message file once (`None`: not in the spool).
    pub fn load(&self, id: &str) -> io::Result<Option<(Entry, Vec<u8>)>> {
        check_id(id)?;
        let Some(mut file) = found(fs::read(self.msg_path(id)))? else {
            return Ok(None);
        };
        let start = data_start(&file);
        let entry = match found(fs::read(self.state_path(id)))? {
            Some(state) => parse_entry(id, &state)?,
            None => parse_entry(id, &file[..start])?,
        };
        file.drain(..start);
        Ok(Some((entry, file)))
    }

    /// Reads one message's data.
    pub fn data(&self, id: &str) -> io::Result<Vec<u8>> {
        check_id(id)?;
        let mut file = fs::read(self.msg_path(id))?;
        file.drain(..data_start(&file));
        Ok(file)
    }

    /// Removes a message: its state first, then the message (no fsync: see the module docs).
    pub fn remove(&self, id: &str) -> io::Result<()> {
        check_id(id)?;
        found(fs::remove_file(self.state_path(id)))?;
        if let Some(list) = self
            .recycled
            .as_ref()
            .filter(|l| lock(l).len() < RECYCLE_MAX)
        {
            let to = self.tmp().join(format!("{id}.free"));
            match found(fs::rename(self.msg_path(id), &to)) {
                Ok(Some(())) => {
                    // A parked file holds no message bytes: cut to nothing once it is out of
                    // queue/ (a crash before the cut leaves it in tmp/, which start-up empties),
                    // so the plaintext of a message that went to the portal or the quarantine
                    // (held encrypted there) does not wait in tmp/ until a later message
                    // reuses the file. O_TRUNC is one syscall; the inode (what recycling saves)
                    // stays. A file that cannot be cut is unlinked, never parked.
                    let cut = fs::OpenOptions::new().write(true).truncate(true).open(&to);
                    if cut.is_err() {
                        return found(fs::remove_file(&to)).map(drop);
                    }
                    lock(list).push(to);
                    return Ok(());
                }
                Ok(None) => return Ok(()),
                // tmp/ unusable: the message must still go, or it is delivered again.
                Err(_) => {}
            }
        }
        found(fs::remove_file(self.msg_path(id))).map(drop)
    }

    /// Every message in the spool, oldest first. Unreadable entries are skipped (and reported
    /// in the second list) rather than stopping the queue.
    pub fn list(&self) -> io::Result<(Vec<Entry>, Vec<String>)> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for e in fs::read_dir(self.queue())? {
            let p = e?.path();
            if p.extension().is_none_or(|x| x != "msg") {
                continue;
            }
            let Some(id) = p.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            match self.entry(id) {
                Ok(Some(entry)) => out.push(entry),
                Ok(None) => {}
                Err(e) => bad.push(e.to_string()),
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok((out, bad))
    }

    /// Asks a running relay to retry everything now (it polls for this file).
    pub fn request_flush(&self) -> io::Result<()> {
        write_synced(&self.root.join("flush"), b"")
    }

    /// Takes a pending flush request, if any.
    pub fn take_flush(&self) -> bool {
        fs::remove_file(self.root.join("flush")).is_ok()
    }

    /// Asks a running relay to drain (`true`: refuse new mail with 421 and fail its health
    /// check, while it delivers what it holds) or to take mail again (`false`).
    pub fn request_drain(&self, drain: bool) -> io::Result<()> {
        let f = self.root.join("draining");
        if drain {
            write_synced(&f, b"")
        } else {
            match fs::remove_file(f) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
    }

    /// Whether draining is asked for.
    pub fn drain_requested(&self) -> bool {
        self.root.join("draining").exists()
    }
}

/// IDs become file names: only what `new_id` makes is allowed (no path tricks from the CLI).
fn check_id(id: &str) -> io::Result<()> {
    if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{id:?} is not a queue ID"),
        ))
    }
}

fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = crate::util::private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// A file that is not there is `None`, not an error.
fn found<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where the data starts in a message file: after the envelope line.
fn data_start(file: &[u8]) -> usize {
    memchr::memchr(b'\n', file).map_or(file.len(), |i| i + 1)
}

fn parse_entry(id: &str, json: &[u8]) -> io::Result<Entry> {
    serde_json::from_slice(json)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{id}: {e}")))
}

/// Writes `parts` from the start of `f`, cuts off whatever an earlier use left beyond them,
/// and fsyncs.
fn overwrite_synced(mut f: File, parts: &[&[u8]]) -> io::Result<()> {
    let mut len = 0u64;
    for p in parts {
        f.write_all(p)?;
        len += p.len() as u64;
    }
    f.set_len(len)?;
    f.sync_all()
}

fn lock(list: &std::sync::Mutex<Vec<PathBuf>>) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
    list.lock().unwrap_or_else(|p| p.into_inner())
}

/// Group commit for a directory: a rename in it is durable once an fsync of the directory that
/// began after the rename has succeeded, so commits that overlap share one fsync (with eight
/// sessions, one fsync of `queue/` instead of up to eight). Every commit learns the outcome of
/// the fsync that covered it: a failed one fails all of them.
#[derive(Debug, Default)]
struct DirCommits {
    state: std::sync::Mutex<Commits>,
    settled: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct Commits {
    /// Tickets handed out, one per commit, after its rename.
    issued: u64,
    /// Every ticket up to this one has its outcome.
    settled: u64,
    /// An fsync is under way.
    running: bool,
    /// fsyncs that failed, while commits they covered have not yet read it.
    failed: Vec<Failed>,
}

#[derive(Debug)]
struct Failed {
    /// Tickets `after+1 ..= upto` were covered.
    after: u64,
    upto: u64,
    /// Covered commits still to read it.
    unread: u64,
    kind: io::ErrorKind,
    text: String,
}

impl DirCommits {
    fn commit(&self, dir: &Path) -> io::Result<()> {
        self.commit_with(|| sync_dir(dir))
    }

    fn commit_with(&self, sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.issued += 1;
        let ticket = s.issued;
        loop {
            if ticket <= s.settled {
                let Some(i) = s
                    .failed
                    .iter()
                    .position(|f| f.after < ticket && ticket <= f.upto)
                else {
                    return Ok(());
                };
                let f = &mut s.failed[i];
                let e = io::Error::new(f.kind, f.text.clone());
                f.unread -= 1;
                if f.unread == 0 {
                    s.failed.swap_remove(i);
                }
                return Err(e);
            }
            if s.running {
                s = self.settled.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // This commit leads: its fsync covers every ticket handed out so far.
            s.running = true;
            let (after, upto) = (s.settled, s.issued);
            drop(s);
            let r = sync();
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.running = false;
            s.settled = upto;
            if let Err(e) = &r {
                // The others covered (all but this one) read it when they wake.
                if upto - after > 1 {
                    s.failed.push(Failed {
                        after,
                        upto,
                        unread: upto - after - 1,
                        kind: e.kind(),
                        text: e.to_string(),
                    });
                }
            }
            drop(s);
            self.settled.notify_all();
            return r;
        }
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn hold_kinds_keep_the_spool_format_of_earlier_versions() {
        let held = RcptState::Held {
            kind: HoldKind::Error,
            reason: "r".into(),
        };
        let text = serde_json::to_string(&held).unwrap();
        assert_eq!(text, r#"{"state":"held","kind":"error","reason":"r"}"#);
        let old: RcptState =
            serde_json::from_str(r#"{"state":"held","kind":"portal","reason":"x"}"#).unwrap();
        assert!(matches!(
            old,
            RcptState::Held {
                kind: HoldKind::Portal,
                ..
            }
        ));
        assert!(serde_json::from_str::<RcptState>(
            r#"{"state":"held","kind":"made-up","reason":"x"}"#
        )
        .is_err());
    }

    fn entry(id: &str) -> Entry {
        Entry {
            id: id.into(),
            origin: Origin::Internal,
            received_at: 1,
            client: "127.0.0.1".into(),
            mail_from: Some("a@clinic.example".into()),
            envid: None,
            ret: None,
            recipients: vec![Recipient::new("b@x.example".into())],
            attempts: 0,
            next_attempt: 0,
            size: 3,
            released: false,
            inspection: None,
        }
    }

    #[test]
    fn accept_list_update_remove() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        let id = Spool::new_id();
        s.accept(&entry(&id), b"abc").unwrap();
        assert_eq!(s.data(&id).unwrap(), b"abc");
        assert_eq!(s.load(&id).unwrap().unwrap(), (entry(&id), b"abc".to_vec()));
        let (all, bad) = s.list().unwrap();
        assert_eq!(all.len(), 1);
        assert!(bad.is_empty());
        let mut e = all[0].clone();
        e.recipients[0].state = RcptState::Delivered;
        assert!(s.update(&e).unwrap());
        assert!(s.entry(&id).unwrap().unwrap().is_done());
        // The saved state overrides the envelope line; the data stays.
        assert_eq!(s.load(&id).unwrap().unwrap(), (e.clone(), b"abc".to_vec()));
        s.remove(&id).unwrap();
        assert!(s.entry(&id).unwrap().is_none());
        assert!(s.load(&id).unwrap().is_none());
        // A removed message is not brought back by a late update.
        assert!(!s.update(&e).unwrap());
        assert!(s.entry(&id).unwrap().is_none());
    }

    /// Issue 14.7: message bodies are the owner's alone, whatever the umask, and a spool made
    /// by an older version (0755) is tightened at open.
    #[cfg(unix)]
    #[test]
    fn spool_files_and_folders_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("spool");
        fs::create_dir_all(root.join("queue")).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let s = Spool::open(&root).unwrap();
        let id = Spool::new_id();
        let mut e = entry(&id);
        s.accept(&e, b"abc").unwrap();
        e.attempts = 1;
        s.update(&e).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for dir in [root.clone(), root.join("queue"), root.join("tmp")] {
            assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        }
        for f in fs::read_dir(root.join("queue")).unwrap() {
            let p = f.unwrap().path();
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }

    #[test]
    #[cfg(unix)]
    fn finished_files_are_written_over_and_never_kept_across_a_restart() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        let first = Spool::new_id();
        let long = vec![b'L'; 100_000];
        s.accept(&entry(&first), &long).unwrap();
        // Held open, so that without recycling the inode could not be handed out again.
        let held = File::open(s.msg_path(&first)).unwrap();
        let inode = held.metadata().unwrap().ino();
        s.remove(&first).unwrap();
        assert!(s.entry(&first).unwrap().is_none());
        // The next message goes into the same inode, and nothing of the longer one is left.
        let second = Spool::new_id();
        s.accept(&entry(&second), b"short").unwrap();
        assert_eq!(fs::metadata(s.msg_path(&second)).unwrap().ino(), inode);
        assert_eq!(s.data(&second).unwrap(), b"short");
        assert_eq!(s.entry(&second).unwrap().unwrap().id, second);
        assert_eq!(s.list().unwrap().0.len(), 1);
        // A finished file waiting for reuse is gone after a restart, never reused.
        s.remove(&second).unwrap();
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 1);
        let s = Spool::open(d.path()).unwrap();
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
        let third = Spool::new_id();
        s.accept(&entry(&third), b"abc").unwrap();
        drop(held);
        // A tool beside the relay (`queue delete`) unlinks: it has nobody to hand files to.
        Spool::open_existing(d.path()).remove(&third).unwrap();
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(d.path().join("queue")).unwrap().count(), 0);
    }

    /// Every file under `root` whose bytes contain `needle`.
    fn files_holding(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    todo.push(p);
                } else if memchr::memmem::find(&fs::read(&p).unwrap(), needle).is_some() {
                    found.push(p);
                }
            }
        }
        found
    }

    #[test]
    fn a_finished_message_leaves_no_bytes_in_the_file_kept_for_reuse() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        let id = Spool::new_id();
        s.accept(
            &entry(&id),
            b"Subject: Jane Roe HIV result\r\n\r\nMARKER-7731\r\n",
        )
        .unwrap();
        s.update(&entry(&id)).unwrap();
        s.remove(&id).unwrap();
        // Parked for reuse (the inode is what recycling saves) ...
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 1);
        // ... but nothing of the message is left anywhere under the spool.
        for marker in [&b"MARKER-7731"[..], b"Jane Roe"] {
            assert_eq!(files_holding(d.path(), marker), Vec::<PathBuf>::new());
        }
    }

    #[test]
    fn a_finished_message_is_removed_even_when_it_cannot_be_kept_for_reuse() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        let id = Spool::new_id();
        s.accept(&entry(&id), b"abc").unwrap();
        // The staging folder becomes a file (as a full or broken disk makes renames fail).
        fs::remove_dir(d.path().join("tmp")).unwrap();
        fs::write(d.path().join("tmp"), b"").unwrap();
        s.remove(&id).unwrap();
        assert!(s.entry(&id).unwrap().is_none());
        assert!(!s.msg_path(&id).exists());
    }

    #[test]
    fn overlapping_commits_share_an_fsync_and_all_learn_its_failure() {
        use std::sync::atomic::AtomicUsize;
        let c = std::sync::Arc::new(DirCommits::default());
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        fn issued(c: &DirCommits) -> u64 {
            c.state.lock().unwrap().issued
        }
        // The first fsync lasts until four more commits wait; the next one, which covers
        // those four, fails; the one after succeeds.
        fn run(
            c: std::sync::Arc<DirCommits>,
            calls: std::sync::Arc<AtomicUsize>,
        ) -> io::Result<()> {
            c.clone()
                .commit_with(move || match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => {
                        while issued(&c) < 5 {
                            std::thread::sleep(std::time::Duration::from_millis(1));
                        }
                        Ok(())
                    }
                    1 => Err(io::Error::other("disk gone")),
                    _ => Ok(()),
                })
        }
        let first = {
            let (c, calls) = (c.clone(), calls.clone());
            std::thread::spawn(move || run(c, calls))
        };
        while issued(&c) < 1 {
            std::thread::yield_now();
        }
        let others: Vec<_> = (0..4)
            .map(|_| {
                let (c, calls) = (c.clone(), calls.clone());
                std::thread::spawn(move || run(c, calls))
            })
            .collect();
        assert!(first.join().unwrap().is_ok());
        for t in others {
            let e = t.join().unwrap().unwrap_err();
            assert_eq!(e.to_string(), "disk gone");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "five commits, two fsyncs");
        assert!(c.state.lock().unwrap().failed.is_empty());
        assert!(run(c.clone(), calls.clone()).is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn half_written_messages_are_dropped_at_open() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        fs::write(d.path().join("queue/ORPHAN.state"), b"x").unwrap();
        fs::write(d.path().join("tmp/PART.msg"), b"x").unwrap();
        let id = Spool::new_id();
        s.accept(&entry(&id), b"abc").unwrap();
        let s = Spool::open(d.path()).unwrap();
        assert!(!d.path().join("queue/ORPHAN.state").exists());
        assert!(!d.path().join("tmp/PART.msg").exists());
        assert_eq!(s.list().unwrap().0.len(), 1);
    }

    #[test]
    fn ids_are_unique_and_safe() {
        let a = Spool::new_id();
        let b = Spool::new_id();
        assert_ne!(a, b);
        assert!(check_id(&a).is_ok());
        assert!(check_id("../etc/passwd").is_err());
        assert!(check_id("").is_err());
    }
}

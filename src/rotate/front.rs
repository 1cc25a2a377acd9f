//! The Qdrant front's keys: each application user's own key, and the map of Qdrant's keys the
//! front sends on. HAProxy changes a map in place through its admin socket (`add map`,
//! `set map`, `del map`), so a key is added, switched or removed with no reload and no restart:
//! the re-rendered map file is delivered into the front's volume, and a script in the front's
//! container makes the running map equal to it. A renewed certificate is replaced the same way
//! (`set ssl cert`, `commit ssl cert`). The values travel through the socket only, never on a
//! command line.

use anyhow::Context as _;

use super::Context;
use crate::layout::{self, StackFile};
use crate::probe;
use crate::profile::Service;
use crate::secrets::Secret;

/// Makes the running map equal to the map file at `ARGV[1]` through the admin socket at
/// `ARGV[0]`; prints how many entries changed. An answer other than an empty line is an error.
const SYNC: &str = r#"
use strict; use warnings; use IO::Socket::UNIX;
my ($socket, $file) = @ARGV;
sub cli {
  my $s = IO::Socket::UNIX->new(Peer => $socket) or die "the admin socket $socket: $!\n";
  print $s "$_[0]\n"; local $/; my $answer = <$s>; return defined $answer ? $answer : "";
}
my (%want, %have);
open(my $f, "<", $file) or die "$file: $!\n";
while (<$f>) { next if /^\s*(#|$)/; my ($k, $v) = split; $want{$k} = $v; }
for (split /\n/, cli("show map $file")) { my (undef, $k, $v) = split; $have{$k} = $v if defined $v; }
my $changed = 0;
sub run { my $answer = cli($_[0]); die "$_[1]: $answer" if $answer =~ /\S/; $changed++; }
for my $k (sort keys %want) {
  if (!exists $have{$k}) { run("add map $file $k $want{$k}", "add map") }
  elsif ($have{$k} ne $want{$k}) { run("set map $file $k $want{$k}", "set map") }
}
for my $k (sort keys %have) { run("del map $file $k", "del map") unless exists $want{$k} }
print "$changed\n";
"#;

/// Replaces the certificate the front serves through the admin socket (`set ssl cert` with the
/// delivered pair, then `commit ssl cert`): no reload, no connection closed. The key travels
/// through the socket only. `ARGV`: the socket, the certificate's path (its name in HAProxy's
/// store), the key's path.
const SET_CERTIFICATE: &str = r#"
use strict; use warnings; use IO::Socket::UNIX;
my ($socket, $crt, $key) = @ARGV;
sub cli {
  my $s = IO::Socket::UNIX->new(Peer => $socket) or die "the admin socket $socket: $!\n";
  print $s $_[0]; local $/; my $answer = <$s>; return defined $answer ? $answer : "";
}
sub slurp { open(my $f, "<", $_[0]) or die "$_[0]: $!\n"; local $/; my $text = <$f>; $text =~ s/\s+$//; return $text; }
my $pem = slurp($crt) . "\n" . slurp($key);
my $answer = cli("set ssl cert $crt <<\n$pem\n\n");
die "set ssl cert: $answer" unless $answer =~ /Transaction (created|updated)/;
$answer = cli("commit ssl cert $crt\n");
die "commit ssl cert: $answer" unless $answer =~ /Success/;
print "committed\n";
"#;

/// Makes the front serve the certificate delivered into its volume, in place.
pub async fn replace_certificate(context: &Context<'_>) -> anyhow::Result<()> {
    let spec = crate::containers::container_spec(context.profile, Service::QdrantFront);
    let at = |file: StackFile| {
        layout::container_path(context.profile, Service::QdrantFront, &file).context("the front receives its pair")
    };
    let command = vec![
        "perl".to_owned(),
        "-e".to_owned(),
        SET_CERTIFICATE.to_owned(),
        crate::render::front::FRONT_ADMIN_SOCKET.to_owned(),
        at(StackFile::ServerCert(Service::QdrantFront))?,
        at(StackFile::ServerKey(Service::QdrantFront))?,
    ];
    let ran = context.engine.exec(&spec.name, &spec.user, command).await?;
    anyhow::ensure!(ran.code == 0, "replacing the front's certificate: {}", ran.output.trim());
    Ok(())
}

/// Re-renders the front's maps from the store, delivers `file` into the front's volume and
/// makes the running map equal to it; how many entries changed.
pub async fn apply(context: &Context<'_>, file: StackFile) -> anyhow::Result<usize> {
    crate::bundle::write(context.profile, context.dir, crate::bundle::Given::default(), false, true).await?;
    let content = std::fs::read(context.dir.file(&file)).with_context(|| format!("reading {}", file.path()))?;
    context.deliver_content(Service::QdrantFront, &file, &content).await?;
    sync(context, &file).await
}

/// Makes the front's running map equal to the delivered `file`.
async fn sync(context: &Context<'_>, file: &StackFile) -> anyhow::Result<usize> {
    let spec = crate::containers::container_spec(context.profile, Service::QdrantFront);
    let path = layout::container_path(context.profile, Service::QdrantFront, file).context("the front receives it")?;
    let command = vec![
        "perl".to_owned(),
        "-e".to_owned(),
        SYNC.to_owned(),
        crate::render::front::FRONT_ADMIN_SOCKET.to_owned(),
        path,
    ];
    let ran = context.engine.exec(&spec.name, &spec.user, command).await?;
    anyhow::ensure!(ran.code == 0, "updating the front's map {}: {}", file.path(), ran.output.trim());
    ran.output.trim().parse().with_context(|| format!("the map update's answer: {}", ran.output.trim()))
}

/// A real request through the front with `key`: list the collections.
pub async fn test(context: &Context<'_>, user: &str, key: &Secret) -> anyhow::Result<()> {
    let target =
        probe::reach(context.engine, context.profile, context.dir, Service::QdrantFront, user, key.clone(), "").await?;
    probe::qdrant(&target).await
}

/// The users' keys whose previous version's grace period has passed leave the front's map;
/// the names of the keys whose previous version left it in this run.
pub async fn expire(context: &Context<'_>) -> anyhow::Result<Vec<String>> {
    use crate::secrets::store::{SecretStore as _, Stage};
    if !context.profile.runs(Service::QdrantFront) {
        return Ok(Vec::new());
    }
    let mut past = Vec::new();
    for user in layout::front_key_users(context.profile) {
        let name = layout::login_secret(Service::QdrantFront, &user.name);
        let current = context.store.current(&name).await?;
        let since = std::time::SystemTime::now().duration_since(current.created).unwrap_or_default();
        if since >= context.profile.rotation.grace.0 && context.store.get(&name, Stage::Previous).await?.is_some() {
            past.push(name);
        }
    }
    // The map rendered now holds a previous key only within its grace period; a run before
    // this one may have removed the keys already.
    if past.is_empty() || apply(context, StackFile::FrontUsers).await? == 0 {
        return Ok(Vec::new());
    }
    Ok(past)
}

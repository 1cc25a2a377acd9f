//! The live servers against the declaration: every Redis ACL user (`ACL LIST`) and every
//! PostgreSQL login role must be one the stack directory declares, with no more rights than
//! declared. A user added by hand on the server, a `nopass` user, a user with a right its
//! declaration lacks, or a second superuser is a failed check naming it.

use super::{CheckFuture, Context, bounded};
use crate::layout::{self, StackFile};
use crate::profile::Service;
use crate::report::Check;

/// What `ACL LIST` shows beyond the declared users (`declared`: users.acl, parsed): one line
/// per problem, naming the user. Empty when the server holds exactly what is declared or less.
pub fn acl_excess(declared: &[(usize, String, Vec<String>)], live: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for line in live {
        let mut words = line.split_whitespace();
        if words.next() != Some("user") {
            continue;
        }
        let Some(name) = words.next() else { continue };
        let rules: Vec<String> = words.map(str::to_owned).collect();
        let Some((line, _, wanted)) = declared.iter().find(|(_, n, _)| n == name) else {
            problems.push(format!("user {name} is on the server but not declared in users.acl"));
            continue;
        };
        if rules.iter().any(|r| r == "nopass") {
            problems.push(format!("user {name} has nopass (users.acl:{line} declares none)"));
        }
        let on = |rules: &[String]| rules.iter().rposition(|r| r == "on") > rules.iter().rposition(|r| r == "off");
        if on(&rules) && !on(wanted) {
            problems.push(format!("user {name} is on; users.acl:{line} declares it off"));
        }
        let grants = |rules: &[String]| -> Vec<String> {
            rules
                .iter()
                .map(|r| match r.as_str() {
                    "allkeys" => "~*".to_owned(),
                    "allchannels" => "&*".to_owned(),
                    "allcommands" => "+@all".to_owned(),
                    other => other.to_owned(),
                })
                .filter(|r| r.starts_with(['+', '~', '%', '&']))
                .collect()
        };
        let allowed = grants(wanted);
        for grant in grants(&rules).iter().filter(|g| !allowed.contains(g)) {
            problems.push(format!("user {name} has {grant}, which users.acl:{line} does not declare"));
        }
        for denial in wanted.iter().filter(|r| r.starts_with('-') && *r != "-@all") {
            if !rules.contains(denial) {
                problems.push(format!("user {name} lacks {denial}, which users.acl:{line} declares"));
            }
        }
    }
    problems
}

/// The login roles a profile declares, each with the attributes it may have
/// (`rolsuper`, `rolcreaterole`, `rolcreatedb`, `rolreplication`, `rolbypassrls`).
fn declared_logins(context: &Context) -> Vec<(String, [bool; 5])> {
    let none = [false; 5];
    let mut logins = vec![
        (layout::POSTGRES_SUPERUSER.to_owned(), [true; 5]),
        (layout::ADMIN.to_owned(), [false, true, true, true, false]),
        (layout::HEALTH.to_owned(), none),
        (layout::BACKUP.to_owned(), [false, false, false, true, false]),
    ];
    for user in context.users() {
        logins.push((user.name.clone(), none));
        logins.push((layout::alternate_login(&user.name), none));
    }
    if context.profile.runs(crate::profile::Service::Pgbouncer) {
        logins.push((layout::POOLER.to_owned(), none));
    }
    if context.profile.postgres.replicas > 0 {
        logins.push((layout::REPLICATION.to_owned(), [false, false, false, true, false]));
    }
    if layout::service_logins(&context.profile, crate::profile::Service::Postgres).contains(&layout::MONITOR) {
        logins.push((layout::MONITOR.to_owned(), none));
    }
    logins
}

/// What the live login roles hold beyond the declaration.
pub fn role_excess(declared: &[(String, [bool; 5])], live: &[(String, [bool; 5])]) -> Vec<String> {
    const ATTRIBUTES: [&str; 5] = ["SUPERUSER", "CREATEROLE", "CREATEDB", "REPLICATION", "BYPASSRLS"];
    let mut problems = Vec::new();
    for (name, attributes) in live {
        let Some((_, allowed)) = declared.iter().find(|(n, _)| n == name) else {
            let what = if attributes[0] { "a second superuser" } else { "a login role" };
            problems.push(format!("{name} is {what} the stack does not declare"));
            continue;
        };
        for (index, attribute) in ATTRIBUTES.iter().enumerate() {
            if attributes[index] && !allowed[index] {
                problems.push(format!("{name} has {attribute}, which the stack does not declare for it"));
            }
        }
    }
    problems
}

/// `redis.acl_declared` and `pg.logins_declared`, for the services the stack runs.
pub fn checks(context: &Context) -> Vec<CheckFuture<'_>> {
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();
    if context.profile.runs(Service::Redis) {
        checks.push(bounded("redis.acl_declared".into(), async move {
            let id = "redis.acl_declared";
            let found: anyhow::Result<(Vec<String>, Vec<String>)> = async {
                let path = context.dir.file(&StackFile::UsersAcl);
                let text = std::fs::read_to_string(&path)
                    .map_err(|err| anyhow::anyhow!("reading the declared ACL file {}: {err}", path.display()))?;
                let declared = crate::audit::parse::acl(&text);
                let live = super::redis::acl_list(context).await?;
                Ok((acl_excess(&declared, &live), live))
            }
            .await;
            match found {
                Ok((problems, live)) if problems.is_empty() => Check::pass(
                    id,
                    "every Redis user on the server is declared in users.acl, with no more rights",
                    format!("ACL LIST: {} user(s), each as declared", live.len()),
                ),
                Ok((problems, _)) => Check::fail(
                    id,
                    "the server's ACL holds more than users.acl declares: remove what was added (ACL DELUSER NAME), or make the server load the declared file again (ACL LOAD as admin)",
                    problems.join("; "),
                ),
                Err(err) => Check::fail(id, "could not read the server's ACL as admin", format!("{err:#}")),
            }
        }));
    }
    if context.profile.runs(Service::Postgres) {
        checks.push(bounded("pg.logins_declared".into(), async move {
            let id = "pg.logins_declared";
            let found: anyhow::Result<(Vec<String>, usize)> = async {
                let rows = context
                    .admin()
                    .await?
                    .query(
                        "SELECT rolname::text, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles WHERE rolcanlogin OR rolsuper ORDER BY 1",
                        &[],
                    )
                    .await?;
                let live: Vec<(String, [bool; 5])> =
                    rows.iter().map(|r| (r.get(0), [r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)])).collect();
                Ok((role_excess(&declared_logins(context), &live), live.len()))
            }
            .await;
            match found {
                Ok((problems, count)) if problems.is_empty() => Check::pass(
                    id,
                    "every login role and superuser on the server is declared, with no more attributes",
                    format!("pg_roles: {count} login or superuser role(s), each as declared"),
                ),
                Ok((problems, _)) => Check::fail(
                    id,
                    "the server has login roles or attributes the stack does not declare: drop the role or remove the attribute (ALTER ROLE NAME NOSUPERUSER ...), or declare the user in the profile",
                    problems.join("; "),
                ),
                Err(err) => Check::fail(id, "could not read pg_roles as admin", format!("{err:#}")),
            }
        }));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> Vec<(usize, String, Vec<String>)> {
        crate::audit::parse::acl(
            "user default off resetpass resetkeys resetchannels -@all\n\
             user admin on #aa ~* &* +@all\n\
             user app on #bb resetkeys resetchannels ~app:* &app:* +@all -@dangerous -@admin\n",
        )
    }

    #[test]
    fn the_acl_as_declared_passes_and_each_excess_is_named() {
        let live = |extra: &str| -> Vec<String> {
            [
                "user admin on #aa ~* &* +@all",
                "user default off resetchannels -@all",
                "user app on #bb ~app:* resetchannels &app:* +@all -@dangerous -@admin",
            ]
            .iter()
            .map(|l| l.to_string())
            .chain((!extra.is_empty()).then(|| extra.to_owned()))
            .collect()
        };
        assert_eq!(acl_excess(&declared(), &live("")), Vec::<String>::new());
        let problems = acl_excess(&declared(), &live("user sneaky on nopass +@all"));
        assert_eq!(problems, ["user sneaky is on the server but not declared in users.acl"]);
        let weak = vec!["user app on nopass ~* &app:* +@all -@admin".to_owned()];
        let problems = acl_excess(&declared(), &weak).join("; ");
        for expected in ["app has nopass", "app has ~*", "app lacks -@dangerous"] {
            assert!(problems.contains(expected), "{expected} in {problems}");
        }
        let on = vec!["user default on resetchannels -@all".to_owned()];
        assert!(acl_excess(&declared(), &on)[0].contains("declares it off"));
    }

    #[test]
    fn an_undeclared_login_a_second_superuser_and_an_extra_attribute_are_named() {
        let declared = vec![("postgres".to_owned(), [true; 5]), ("app".to_owned(), [false; 5])];
        let ok = vec![("app".to_owned(), [false; 5]), ("postgres".to_owned(), [true, true, true, true, true])];
        assert!(role_excess(&declared, &ok).is_empty());
        let bad = vec![
            ("app".to_owned(), [false, true, false, false, false]),
            ("mallory".to_owned(), [true; 5]),
            ("eve".to_owned(), [false; 5]),
        ];
        assert_eq!(
            role_excess(&declared, &bad),
            [
                "app has CREATEROLE, which the stack does not declare for it",
                "mallory is a second superuser the stack does not declare",
                "eve is a login role the stack does not declare",
            ]
        );
    }
}

//! The plan: every value an event's processing needs, checked before anything leaves the
//! function. Pure — no I/O — so each refusal is unit-tested here.

use crate::config::InviteePolicy;
use crate::delivery::NoticeKind;
use crate::delivery::{Channel, DeliveryConfig, Message};
use crate::domain::{
    DisplayName, EventDetails, InvitationRequest, InviteeEmail, Profile, Provenance, UserType,
    parse_date,
};
use crate::inbound::{Action, CrmEvent};
use crate::problem::{Problem, ProblemKind};
use crate::store::EventKey;

/// What the processing is for: a purpose is a kind of work, and the steps ask it what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A CRM event's invitation: the existing-user policy, sponsors, groups, pointers.
    Invitation,
    /// A fresh link for a guest still pending: none of those (the first invitation applied
    /// them), and no new invitee pointer.
    Reminder,
    /// The partnership ended: the offboarding policy, on a guest the relay invited.
    Offboard,
}

/// An event ready for Graph: every value validated.
#[derive(Debug)]
pub(crate) struct Plan {
    pub key: EventKey,
    pub purpose: Purpose,
    pub request: InvitationRequest,
    /// Channels to deliver to, in order.
    pub channels: Vec<String>,
    /// Groups to join: `[invitations] groups` and the route's.
    pub groups: Vec<String>,
    pub details: EventDetails,
    /// Properties to write onto the guest after the invitation.
    pub profile: Profile,
    /// Where the guest came from (written when `[invitations.provenance]` names slots).
    pub provenance: Provenance,
}

impl Plan {
    /// A reminder for a pending guest, under the follow-up's own key.
    pub fn reminder(key: EventKey, request: InvitationRequest, channels: Vec<String>) -> Self {
        Self {
            provenance: Provenance {
                source: key.source.clone(),
                event_id: key.event_id.clone(),
                ..Provenance::default()
            },
            key,
            purpose: Purpose::Reminder,
            request,
            channels,
            groups: Vec::new(),
            details: EventDetails::default(),
            profile: Profile::default(),
        }
    }
}

/// What a plan is checked against: the configuration and the channels the secret provides.
pub(crate) struct PlanInputs<'a> {
    pub invitees: &'a InviteePolicy,
    pub delivery: &'a DeliveryConfig,
    /// `[invitations] groups`.
    pub groups: &'a [String],
    pub channels: &'a [Channel],
    /// Offboarding events are taken (`[offboarding] enabled`).
    pub offboarding: bool,
}

/// Validates every value the invitation and delivery need.
///
/// # Errors
/// The refusal, naming the field or channel at fault.
pub(crate) fn build(
    inputs: &PlanInputs<'_>,
    source: &str,
    event: &CrmEvent,
) -> Result<Plan, Problem> {
    if event.action == Action::Offboard {
        return offboarding(inputs, source, event);
    }
    let email = InviteeEmail::parse(&event.email)
        .and_then(|e| inputs.invitees.domains.check(&e).map(|()| e))
        .map_err(|rule| {
            Problem::new(ProblemKind::InvalidInvitee, rule.to_string()).with("field", "email")
        })?;
    let (profile, provenance) = profile_and_provenance(source, event)?;
    let user_type = user_type(inputs, event.user_type.as_deref())?;
    let redirect = inputs
        .invitees
        .redirect
        .choose(event.redirect_url.as_deref())
        .map_err(|rule| {
            Problem::new(ProblemKind::RedirectNotAllowed, rule.to_string())
                .with("field", "redirectUrl")
        })?;
    let display_name = event.display_name.as_deref().and_then(DisplayName::parse);
    let details = event
        .details()
        .map_err(|e| Problem::new(ProblemKind::Unprocessable, e).with("field", "owner"))?;
    let ctx = crate::delivery::context(
        source,
        &event.event_id,
        email.as_str(),
        display_name.as_ref().map(DisplayName::as_str),
        &details,
        None,
        None,
    );
    let (channels, route_groups) = choose_channels(inputs, event.channels.as_deref(), &ctx)?;
    let mut groups = inputs.groups.to_vec();
    for g in route_groups {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let sample = crate::delivery::sample_invitation();
    let msg = Message {
        source,
        event_id: &event.event_id,
        email: &email,
        display_name: display_name.as_ref(),
        details: &details,
        invitation: &sample,
    };
    check_renders(inputs, &channels, &msg)?;
    check_owner_cc(inputs, &channels, &details)?;
    Ok(Plan {
        key: EventKey {
            source: source.to_owned(),
            event_id: event.event_id.clone(),
        },
        purpose: Purpose::Invitation,
        request: InvitationRequest::new(email, display_name, user_type, redirect),
        channels,
        groups,
        details,
        profile,
        provenance,
    })
}

/// The guest's properties and provenance, checked against Graph's rules.
fn profile_and_provenance(
    source: &str,
    event: &CrmEvent,
) -> Result<(Profile, Provenance), Problem> {
    let profile = Profile::parse(&event.profile).map_err(|e| {
        Problem::new(
            ProblemKind::Unprocessable,
            format!("profile.{}: {}", e.property, e.rule),
        )
        .with("field", format!("profile.{}", e.property))
    })?;
    let contract_end = match &event.contract_end {
        None => None,
        Some(raw) => Some(parse_date(raw).ok_or_else(|| {
            Problem::new(
                ProblemKind::Unprocessable,
                "contract_end is not a date (YYYY-MM-DD)",
            )
            .with("field", "contractEnd")
        })?),
    };
    Ok((
        profile,
        Provenance {
            source: source.to_owned(),
            record_id: event.record_id.clone(),
            event_id: event.event_id.clone(),
            contract_end,
        },
    ))
}

/// An offboarding event: only the partner's address is needed (the guest is found by it);
/// refused unless offboarding is enabled.
fn offboarding(inputs: &PlanInputs<'_>, source: &str, event: &CrmEvent) -> Result<Plan, Problem> {
    if !inputs.offboarding {
        return Err(Problem::new(
            ProblemKind::Unprocessable,
            "offboarding is not enabled ([offboarding] enabled = true)",
        )
        .with("field", "action"));
    }
    let email = InviteeEmail::parse(&event.email).map_err(|rule| {
        Problem::new(ProblemKind::InvalidInvitee, rule.to_string()).with("field", "email")
    })?;
    let details = event
        .details()
        .map_err(|e| Problem::new(ProblemKind::Unprocessable, e).with("field", "owner"))?;
    let redirect = inputs
        .invitees
        .redirect
        .choose(None)
        .map_err(|rule| Problem::new(ProblemKind::RedirectNotAllowed, rule.to_string()))?;
    let (channels, _) = notice_channels(
        inputs,
        NoticeKind::GuestOffboarded,
        source,
        event,
        &email,
        &details,
    )?;
    Ok(Plan {
        key: EventKey {
            source: source.to_owned(),
            event_id: event.event_id.clone(),
        },
        purpose: Purpose::Offboard,
        request: InvitationRequest::new(email, None, UserType::Guest, redirect),
        channels,
        groups: inputs.groups.to_vec(),
        details,
        profile: Profile::default(),
        provenance: Provenance {
            source: source.to_owned(),
            event_id: event.event_id.clone(),
            ..Provenance::default()
        },
    })
}

/// The channels a route names for a lifecycle notice of `kind` (none without such a route).
fn notice_channels(
    inputs: &PlanInputs<'_>,
    kind: NoticeKind,
    source: &str,
    event: &CrmEvent,
    email: &InviteeEmail,
    details: &EventDetails,
) -> Result<(Vec<String>, Vec<String>), Problem> {
    let ctx = crate::delivery::context(
        source,
        &event.event_id,
        email.as_str(),
        event.display_name.as_deref(),
        details,
        None,
        None,
    );
    let route = inputs
        .delivery
        .routes
        .choose_for(kind, &ctx)
        .map_err(|e| Problem::new(ProblemKind::Unprocessable, e).with("field", "routes"))?;
    Ok(route.map_or((Vec::new(), Vec::new()), |r| {
        (r.channels.clone(), Vec::new())
    }))
}

fn user_type(inputs: &PlanInputs<'_>, raw: Option<&str>) -> Result<UserType, Problem> {
    let t = match raw {
        None => UserType::Guest,
        Some(raw) => UserType::parse(raw).ok_or_else(|| {
            Problem::new(
                ProblemKind::Unprocessable,
                "userType must be Guest or Member",
            )
            .with("field", "userType")
        })?,
    };
    if t == UserType::Member && !inputs.invitees.allow_members {
        return Err(Problem::new(
            ProblemKind::Unprocessable,
            "Member invitations are not enabled (ALLOW_MEMBER_INVITATIONS)",
        )
        .with("field", "userType"));
    }
    Ok(t)
}

fn channel<'a>(inputs: &PlanInputs<'a>, name: &str) -> Option<&'a Channel> {
    inputs.channels.iter().find(|c| c.name == name)
}

/// The event's requested channels (all must exist), else the first matching route's (with
/// its groups), else every channel.
pub(crate) fn choose_channels(
    inputs: &PlanInputs<'_>,
    requested: Option<&[String]>,
    ctx: &minijinja::Value,
) -> Result<(Vec<String>, Vec<String>), Problem> {
    let configured: Vec<String> = inputs.channels.iter().map(|c| c.name.clone()).collect();
    let (chosen, groups) = match requested.filter(|r| !r.is_empty()) {
        Some(requested) => {
            if let Some(_unknown) = requested
                .iter()
                .find(|n| !configured.iter().any(|c| c == n.trim()))
            {
                return Err(Problem::new(
                    ProblemKind::Unprocessable,
                    "delivery.channels names a channel that is not configured",
                )
                .with("field", "delivery.channels")
                .with("known", configured));
            }
            (
                requested.iter().map(|n| n.trim().to_owned()).collect(),
                Vec::new(),
            )
        }
        None if inputs.delivery.routes.is_empty() => (configured, Vec::new()),
        None => {
            let route = inputs
                .delivery
                .routes
                .choose(ctx)
                .map_err(|e| Problem::new(ProblemKind::Unprocessable, e).with("field", "routes"))?
                .ok_or_else(|| {
                    Problem::new(ProblemKind::NoRoute, "no routing rule matches this event")
                })?;
            tracing::debug!(route = %route.name, "route chosen");
            (route.channels.clone(), route.groups.clone())
        }
    };
    let mut out: Vec<String> = Vec::new();
    for c in chosen {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok((out, groups))
}

/// Every chosen channel's message renders for this event (with a stand-in link), so a
/// template that fails on these values refuses the event before anything is invited.
pub(crate) fn check_renders(
    inputs: &PlanInputs<'_>,
    channels: &[String],
    msg: &Message<'_>,
) -> Result<(), Problem> {
    for c in channels.iter().filter_map(|n| channel(inputs, n)) {
        crate::delivery::render(&c.name, c.kind, &inputs.delivery.templates, msg)
            .map_err(|e| super::errors::unusable_channel(&c.name, e))?;
    }
    Ok(())
}

/// An owner copied on an email channel must be inside the domains that channel may copy.
pub(crate) fn check_owner_cc(
    inputs: &PlanInputs<'_>,
    channels: &[String],
    details: &EventDetails,
) -> Result<(), Problem> {
    let Some(owner) = &details.owner_email else {
        return Ok(());
    };
    let refused = channels
        .iter()
        .filter_map(|n| channel(inputs, n))
        .find(|c| {
            c.email()
                .is_some_and(|e| e.cc_owner && !e.cc_allowed(owner))
        });
    match refused {
        Some(c) => Err(Problem::new(
            ProblemKind::Unprocessable,
            format!(
                "the owner email is outside the domains channel {} may copy",
                c.name
            ),
        )
        .with("field", "ownerEmail")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::secrets::SecretValues;

    const SECRET: &[(&str, &str)] = &[
        ("graph_client_secret", "s3cret-value"),
        (
            "webhook_signing_secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
        (
            "slack_webhook_url",
            "https://hooks.slack.com/services/T0/B0/x",
        ),
        ("delivery_webhook_url", "https://hooks.partner.example/in"),
        (
            "delivery_signing_secret",
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        ),
    ];

    fn config(extra: &[(&str, &str)]) -> Config {
        let base = [
            ("RELAY_SECRET_ID", "s"),
            ("GRAPH_TENANT_ID", "contoso.onmicrosoft.com"),
            ("GRAPH_CLIENT_ID", "00000000-0000-0000-0000-000000000001"),
            ("INVITE_REDIRECT_URL", "https://myapps.microsoft.com"),
            ("TENANT_VERIFIED_DOMAINS", "contoso.com"),
        ];
        Config::from_lookup(|k| {
            extra
                .iter()
                .chain(base.iter())
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .unwrap()
    }

    fn channels(c: &Config) -> Vec<Channel> {
        Channel::resolve(
            &c.delivery,
            &SecretValues::from_pairs(SECRET.iter().copied()),
            false,
        )
        .unwrap()
    }

    fn event(f: impl FnOnce(&mut CrmEvent)) -> CrmEvent {
        let mut e: CrmEvent = serde_json::from_value(serde_json::json!({
            "eventId": "evt_1", "eventType": "partner.signed", "email": "ada@partner.example",
            "displayName": "Ada", "userType": null, "redirectUrl": null, "channels": null,
            "occurredAt": null
        }))
        .unwrap();
        f(&mut e);
        e
    }

    fn plan(c: &Config, e: &CrmEvent) -> Result<Plan, Problem> {
        let ch = channels(c);
        let inputs = PlanInputs {
            invitees: &c.invitees,
            delivery: &c.delivery,
            groups: &c.policy.groups,
            channels: &ch,
            offboarding: c.policy.offboarding.enabled,
        };
        build(&inputs, "generic", e)
    }

    #[test]
    fn every_channel_without_routes_and_requested_ones_when_named() {
        let c = config(&[]);
        let p = plan(&c, &event(|_| {})).unwrap();
        assert_eq!(p.channels, ["slack", "webhook"]);
        assert_eq!(p.purpose, Purpose::Invitation);
        let p = plan(
            &c,
            &event(|e| e.channels = Some(vec!["webhook".into(), "webhook".into()])),
        )
        .unwrap();
        assert_eq!(p.channels, ["webhook"], "named once");
        let e = plan(&c, &event(|e| e.channels = Some(vec!["fax".into()]))).unwrap_err();
        assert_eq!(
            (e.kind, e.extensions["field"].as_str()),
            (ProblemKind::Unprocessable, Some("delivery.channels"))
        );
    }

    #[test]
    fn routes_choose_channels_and_add_groups_or_refuse() {
        let c = config(&[(
            "RELAY_CONFIG",
            "[channels.slack]\n[channels.webhook]\n[invitations]\ngroups = [\"1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6\"]\n[[routes]]\nwhen = \"fields.region == 'emea'\"\nchannels = [\"slack\"]\ngroups = [\"2e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6\"]\n",
        )]);
        let emea = event(|e| {
            e.fields.insert("region".into(), "emea".into());
        });
        let p = plan(&c, &emea).unwrap();
        assert_eq!(p.channels, ["slack"]);
        assert_eq!(p.groups.len(), 2, "the policy's group and the route's");
        let e = plan(&c, &event(|_| {})).unwrap_err();
        assert_eq!(e.kind, ProblemKind::NoRoute);
    }

    #[test]
    fn members_addresses_and_redirects_are_refused_before_any_call() {
        let c = config(&[]);
        let e = plan(&c, &event(|e| e.user_type = Some("Member".into()))).unwrap_err();
        assert_eq!(e.extensions["field"], "userType");
        let c = config(&[("ALLOW_MEMBER_INVITATIONS", "true")]);
        assert!(plan(&c, &event(|e| e.user_type = Some("Member".into()))).is_ok());
        let e = plan(&c, &event(|e| e.email = "insider@contoso.com".into())).unwrap_err();
        assert_eq!(e.kind, ProblemKind::InvalidInvitee);
        let e = plan(
            &c,
            &event(|e| e.redirect_url = Some("https://evil.example".into())),
        )
        .unwrap_err();
        assert_eq!(e.kind, ProblemKind::RedirectNotAllowed);
    }

    #[test]
    fn templates_that_fail_and_owners_outside_cc_domains_refuse_the_event() {
        let c = config(&[(
            "RELAY_CONFIG",
            "[channels.slack.templates.en]\nsummary = \"{{ 1 // (((fields.x or 'abc') | length) - 1) }}\"\nbody = \"b\"\nbutton = \"go\"\n",
        )]);
        let e = plan(
            &c,
            &event(|e| {
                e.fields.insert("x".into(), "v".into());
            }),
        )
        .unwrap_err();
        assert_eq!(e.extensions["channel"], "slack", "{}", e.detail);
        let c = config(&[(
            "RELAY_CONFIG",
            "[channels.email]\nfrom = \"Contoso <partners@contoso.com>\"\ncc_owner = true\n",
        )]);
        let ch = Channel::resolve(
            &c.delivery,
            &SecretValues::from_pairs(SECRET.iter().copied()),
            false,
        )
        .unwrap();
        let inputs = PlanInputs {
            invitees: &c.invitees,
            delivery: &c.delivery,
            groups: &[],
            channels: &ch,
            offboarding: false,
        };
        let outsider = EventDetails {
            owner_email: Some("grace@elsewhere.example".into()),
            ..EventDetails::default()
        };
        let e = check_owner_cc(&inputs, &["email".into()], &outsider).unwrap_err();
        assert_eq!(e.extensions["field"], "ownerEmail");
        let insider = EventDetails {
            owner_email: Some("grace@contoso.com".into()),
            ..EventDetails::default()
        };
        assert!(check_owner_cc(&inputs, &["email".into()], &insider).is_ok());
    }
}

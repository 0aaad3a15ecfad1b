//! The desktop window, driven headlessly through egui_kittest: the real app on the
//! real world thread, clicked like a user would.

use std::time::Duration;

use agent_ecology::{
    gui::{EcologyApp, Session, SessionOptions, app::Tab},
    kernel::{actions::Amount, state},
    scene::{
        Scene,
        raw::SystemAct,
        timeline::{InterventionAct, ScheduledIntervention, Timeline},
    },
    world::ids::ArtifactId,
};
use egui_kittest::{Harness, kittest::Queryable};

const WAIT: Duration = Duration::from_secs(30);

fn default_app() -> EcologyApp {
    EcologyApp::new(Session::start(Scene::embedded_default().unwrap(), SessionOptions::default()))
}

fn harness(app: EcologyApp) -> Harness<'static, EcologyApp> {
    let mut harness =
        Harness::builder().with_size([1400.0, 900.0]).build_ui_state(|ui, app: &mut EcologyApp| app.frame_ui(ui), app);
    assert!(harness.state_mut().wait_for(WAIT, |m| m.status.is_some()), "the world never reported");
    harness.step();
    harness
}

fn steps(harness: &Harness<'_, EcologyApp>) -> u64 {
    harness.state().model.status.as_ref().map_or(0, |s| s.steps)
}

#[test]
fn the_window_starts_on_the_default_scene_paused() {
    let harness = harness(default_app());
    let status = harness.state().model.status.clone().unwrap();
    assert_eq!(status.scene, "default");
    assert_eq!(status.steps, 0);
    assert!(!status.playing);
    harness.get_by_label("▶ Play");
    harness.get_by_label_contains("default — seed 42");
}

#[test]
fn play_advances_the_clock_and_pause_stops_it() {
    let mut harness = harness(default_app());
    harness.get_by_label("▶ Play").click();
    harness.step();
    assert!(harness.state_mut().wait_for(WAIT, |m| m.status.as_ref().is_some_and(|s| s.steps >= 5)));
    harness.step();
    harness.get_by_label("⏸ Pause").click();
    harness.step();
    assert!(harness.state_mut().wait_for(WAIT, |m| m.status.as_ref().is_some_and(|s| !s.playing)));
    let stopped_at = steps(&harness);
    std::thread::sleep(Duration::from_millis(400));
    harness.state_mut().absorb_updates();
    assert_eq!(steps(&harness), stopped_at, "paused, the world does not move");
    harness.step();
    harness.get_by_label(&format!("step {stopped_at}"));
}

#[test]
fn single_step_runs_exactly_one_step() {
    let mut harness = harness(default_app());
    harness.get_by_label("⏭ Step").click();
    harness.step();
    assert!(harness.state_mut().wait_for(WAIT, |m| m.status.as_ref().is_some_and(|s| s.steps == 1)));
    std::thread::sleep(Duration::from_millis(200));
    harness.state_mut().absorb_updates();
    assert_eq!(steps(&harness), 1);
}

/// Opens the principals tab and selects `id` by clicking its row.
fn select_principal(harness: &mut Harness<'static, EcologyApp>, id: &str) {
    harness.get_by_label("Principals").click();
    harness.step();
    assert!(harness.state_mut().wait_for(WAIT, |m| !m.principals.is_empty()));
    harness.step();
    harness.step();
    let row = harness.get_all_by_label_contains(id).next().expect("a row for the principal");
    row.click();
    harness.step();
    assert_eq!(harness.state().selected().map(|s| s.as_str()), Some(id));
    let wanted = id.to_owned();
    assert!(harness.state_mut().wait_for(WAIT, |m| m.detail.as_ref().is_some_and(|d| d.id.as_str() == wanted)));
    harness.step();
}

#[test]
fn selecting_a_principal_opens_its_inspector() {
    let mut harness = harness(default_app());
    select_principal(&mut harness, "alice");
    assert_eq!(harness.state().tab, Tab::Principals);
    harness.get_by_label("Interventions");
    harness.get_by_label("Grant scrip");
    harness.get_by_label_contains("Recent events");
}

#[test]
fn an_intervention_from_the_window_changes_the_world_and_is_in_the_event_stream() {
    let mut harness = harness(default_app());
    select_principal(&mut harness, "alice");
    let before = harness.state().model.principals.iter().find(|p| p.id.as_str() == "alice").unwrap().scrip;
    harness.get_by_label("Grant scrip").click();
    harness.step();
    // Queued for the next step: run it.
    harness.get_by_label("⏭ Step").click();
    harness.step();
    let granted = |m: &agent_ecology::gui::model::Model| {
        m.events
            .iter()
            .any(|e| e.kind.type_name() == "SCRIP_GRANTED" && e.kind.mentions(&ArtifactId::parse("alice").unwrap()))
    };
    assert!(harness.state_mut().wait_for(WAIT, granted), "the grant never reached the world");
    assert!(harness.state_mut().wait_for(WAIT, |m| m.status.as_ref().is_some_and(|s| s.interventions_by_hand == 1)));
    assert!(
        harness.state().model.events.iter().any(|e| e.kind.type_name() == "INTERVENTION"),
        "the intervention is recorded as an event"
    );
    harness.step();
    let after = harness.state().model.principals.iter().find(|p| p.id.as_str() == "alice").unwrap().scrip;
    // The same world stepped headless with the same intervention: alice may earn or
    // spend in that step too, and exactly as in the window.
    let mut reference = agent_ecology::run::Simulation::new(&Scene::embedded_default().unwrap(), None).unwrap();
    let at = reference.now();
    reference.world_mut().resource_mut::<Timeline>().schedule(ScheduledIntervention {
        at,
        act: InterventionAct::System(SystemAct::GrantScrip { to: "alice".into(), amount: Amount(100) }),
    });
    reference.step();
    let expected = state::balance(reference.world(), "alice").unwrap();
    assert_eq!(after, expected, "the grant shows in the principals table");
    assert_ne!(after, before, "alice's balance changed");

    harness.get_by_label("Events").click();
    harness.step();
    harness.step();
    // A row: time, actor, type, then the payload (the type-filter menu is closed, so
    // the label is an event's).
    assert!(harness.query_all_by_label("SCRIP_GRANTED").count() >= 1, "the event stream lists the grant");
}

/// Waits until the session has run `steps` steps and stopped.
fn wait_steps(session: &Session, steps: u64) {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if let Some(update) = session.next_update(Duration::from_millis(100))
            && update.status.steps == steps
            && !update.status.playing
        {
            return;
        }
    }
    panic!("the session never reached step {steps}");
}

/// Waits for a status-bar notice that is an error or says `about`, and returns it.
fn wait_notice(session: &Session, about: &str) -> agent_ecology::gui::session::Notice {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if let Some(notice) = session
            .next_update(Duration::from_millis(100))
            .and_then(|u| u.messages.into_iter().find(|notice| notice.error || notice.text.contains(about)))
        {
            return notice;
        }
    }
    panic!("no notice about {about} came");
}

#[test]
fn a_run_steered_by_hand_saves_as_a_scene_that_replays_it_and_as_a_checkpoint() {
    use agent_ecology::gui::Command;
    let dir = tempfile::tempdir().unwrap();
    let session = Session::start(Scene::embedded_default().unwrap(), SessionOptions::default());
    session.send(Command::Step(30));
    wait_steps(&session, 30);
    session.send(Command::Intervene(Box::new(InterventionAct::System(SystemAct::GrantScrip {
        to: "bob".into(),
        amount: Amount(250),
    }))));
    session.send(Command::Intervene(Box::new(InterventionAct::System(SystemAct::Freeze {
        principal: "carol".into(),
        reason: None,
    }))));
    session.send(Command::Step(40));
    wait_steps(&session, 70);
    let run = dir.path().join("run.ron");
    let world = dir.path().join("world.ron");
    let checkpoint = dir.path().join("world.checkpoint");
    session.send(Command::SaveRun(run.clone()));
    let saved_run = wait_notice(&session, "saved the run");
    assert!(!saved_run.error, "{}", saved_run.text);
    session.send(Command::SaveWorld(world.clone()));
    assert!(!wait_notice(&session, "saved the world").error);
    session.send(Command::SaveCheckpoint(checkpoint.clone()));
    let notice = wait_notice(&session, "checkpoint");
    assert!(!notice.error && notice.text.contains("checkpoint of step 70"), "{}", notice.text);

    // Replaying the saved run headless reaches exactly the world the window saw.
    let mut replay = agent_ecology::run::Simulation::new(&Scene::load(&run).unwrap(), None).unwrap();
    replay.run_steps(70);
    assert_eq!(checksum_in(&saved_run.text), Some(replay.checksum().as_str()), "{}", saved_run.text);
    // The same world, saved: only the run's length and clock differ (the window's
    // world is open-ended and realtime, the saved run bounded and in lockstep).
    let seen = std::fs::read_to_string(&world).unwrap();
    let replayed = replay.save_scene().to_ron_string().unwrap();
    let replayed = replayed.replacen("steps: 70,", "steps: 600,", 1).replacen("clock: Lockstep", "clock: Realtime", 1);
    assert_eq!(seen, replayed.replace("run.ron", "world.ron"));
    let mut plain = agent_ecology::run::Simulation::new(&Scene::embedded_default().unwrap(), None).unwrap();
    plain.run_steps(70);
    assert_eq!(replay.report().interventions.applied, plain.report().interventions.applied + 2);
    assert_ne!(replay.checksum(), plain.checksum(), "the interventions changed the run");

    // The checkpoint holds that world: run on headless, it goes as the replay does.
    let saved = agent_ecology::run::Checkpoint::read(&checkpoint).unwrap();
    assert_eq!(saved.info.step, 70);
    let mut resumed = agent_ecology::run::Simulation::from_checkpoint(saved).unwrap();
    resumed.run_steps(20);
    replay.run_steps(20);
    // (Compared as saved scenes: a checkpoint taken between sandbox epochs resumes
    // with fresh workers, whose measured memory differs.)
    let replayed = replay.save_scene().to_ron_string().unwrap();
    let replayed = replayed.replacen("steps: 70,", "steps: 600,", 1).replacen("clock: Lockstep", "clock: Realtime", 1);
    assert_eq!(resumed.save_scene().to_ron_string().unwrap(), replayed);

    // And the window opens both again where they were saved.
    session.send(Command::Open(world.clone()));
    let notice = wait_notice(&session, "opened");
    assert!(!notice.error, "{}", notice.text);
    session.send(Command::Open(checkpoint.clone()));
    let notice = wait_notice(&session, "opened");
    assert!(!notice.error && notice.text.contains("at step 70"), "{}", notice.text);
    session.send(Command::Step(5));
    wait_steps(&session, 75);
    // A world opened from a checkpoint has no start scene to save as a run.
    session.send(Command::SaveRun(dir.path().join("again.ron")));
    let notice = wait_notice(&session, "saved the run");
    assert!(notice.error && notice.text.contains("save a checkpoint instead"), "{}", notice.text);
    // Restarting goes back to the checkpoint.
    session.send(Command::Restart { seed: None });
    let notice = wait_notice(&session, "opened");
    assert!(!notice.error && notice.text.contains("at step 70"), "{}", notice.text);
}

#[test]
fn a_broken_scene_is_refused_with_its_position_and_the_world_goes_on() {
    use agent_ecology::gui::Command;
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.ron");
    std::fs::write(&broken, "Scene(\n  principals: [(id: \"a\", scrip: -5)],\n)\n").unwrap();
    let session = Session::start(Scene::embedded_default().unwrap(), SessionOptions::default());
    session.send(Command::Step(3));
    wait_steps(&session, 3);
    session.send(Command::Open(broken.clone()));
    let notice = wait_notice(&session, "opened");
    assert!(notice.error);
    assert!(notice.text.contains("broken.ron:2:"), "names the file and line: {}", notice.text);
    // The world that was running is still there.
    session.send(Command::Step(2));
    wait_steps(&session, 5);
}

/// Images of the main views after two simulated minutes of the default scene, paused,
/// rendered through wgpu on the software GL renderer. `UPDATE_SNAPSHOTS=1 cargo test
/// snapshots` rewrites them after an intended change to the look.
#[test]
fn snapshots_of_the_main_views() {
    let mut harness = harness(default_app());
    harness.state().send(agent_ecology::gui::Command::Step(120));
    assert!(harness.state_mut().wait_for(WAIT, |m| m.status.as_ref().is_some_and(|s| s.steps == 120 && !s.playing)));
    let mut results = Vec::new();
    for (tab, name) in [
        ("Overview", "overview"),
        ("Principals", "principals"),
        ("Artifacts", "artifacts"),
        ("Network", "network"),
        ("Mint", "mint"),
        ("Events", "events"),
    ] {
        harness.get_by_label(tab).click();
        harness.step();
        // The tables the tab asked for arrive from the world thread.
        assert!(harness.state_mut().wait_for(WAIT, |m| !m.principals.is_empty()));
        std::thread::sleep(Duration::from_millis(200));
        harness.state_mut().absorb_updates();
        // Enough frames for the network layout to settle.
        harness.run_steps(if name == "network" { 200 } else { 4 });
        results.push(harness.try_snapshot(name));
    }
    select_principal(&mut harness, "alice");
    harness.run_steps(4);
    results.push(harness.try_snapshot("inspector"));
    for result in results {
        result.unwrap();
    }
}

#[test]
fn a_capability_request_is_approved_with_a_button() {
    let code = r#"function step(view) {
        if (view.memory) return {actions: [], sleep: {secs: 1000}};
        return [{action: "write", id: view.self, content: "asked"},
                {action: "invoke", id: "kernel_capabilities", method: "request",
                 args: {capability: "lab", reason: "to run the experiment"}}];
    }"#;
    let text = format!(
        r#"Scene(config: (capabilities: (grantable: ["lab"])), principals: [
            (id: "asker", agent: true, disk_bytes: 10000, code: {code:?}, interface: (tools: [(name: "step")])),
        ])"#
    );
    let scene = Scene::from_ron_str("ask.ron", &text).unwrap();
    let mut harness = harness(EcologyApp::new(Session::start(scene, SessionOptions::default())));
    harness.state().send(agent_ecology::gui::Command::Step(2));
    assert!(harness.state_mut().wait_for(WAIT, |m| m.capabilities.iter().any(|r| r.is_pending())));
    harness.get_by_label("Capabilities").click();
    harness.step();
    harness.get_by_label_contains("to run the experiment");
    harness.get_by_label("Approve").click();
    harness.step();
    harness.get_by_label("⏭ Step").click();
    harness.step();
    let granted = |m: &agent_ecology::gui::model::Model| m.capabilities.iter().any(|r| !r.is_pending());
    assert!(harness.state_mut().wait_for(WAIT, granted), "the decision never reached the world");
    let request = harness.state().model.capabilities[0].clone();
    assert!(
        matches!(&request.status, agent_ecology::economy::capabilities::RequestStatus::Granted { by, limit: None, .. } if by == "a person"),
        "{request:?}"
    );
    harness.step();
    harness.get_by_label_contains("granted by a person");
}

#[test]
fn an_agent_is_interviewed_from_its_inspector_and_its_world_is_unchanged() {
    use crate::fake_llm::{FakeLlm, Reply};
    let fake = FakeLlm::start();
    fake.set_default(Reply::text("Because nobody called it.", 30, 6));
    let code = r#"function step(view) { return {actions: [], sleep: {secs: 1000}}; }"#;
    let text = format!(
        r#"Scene(
            config: (llm: (default_model: "fake",
                endpoints: {{"local": (base_url: {url:?})}},
                models: {{"fake": (endpoint: "local", input_usd_per_mtok: 1.0, output_usd_per_mtok: 2.0)}})),
            principals: [(id: "tess", agent: true, llm_budget_micro_usd: 5000, code: {code:?},
                          interface: (tools: [(name: "step")]))],
        )"#,
        url = fake.base_url()
    );
    let scene = Scene::from_ron_str("interview.ron", &text).unwrap();
    let mut harness = harness(EcologyApp::new(Session::start(scene, SessionOptions::default())));
    select_principal(&mut harness, "tess");
    let field = harness.get_by(|n| n.placeholder() == Some("e.g. why did you sell text_tools?"));
    field.focus();
    harness.step();
    harness.get_by(|n| n.placeholder() == Some("e.g. why did you sell text_tools?")).type_text("Why did you sell it?");
    harness.step();
    harness.get_by_label("Ask").click();
    harness.step();
    assert!(harness.state_mut().wait_for(WAIT, |m| !m.interviews.is_empty()), "no answer came");
    harness.step();
    harness.get_by_label("Why did you sell it?");
    harness.get_by_label("Because nobody called it.");
    let interview = harness.state().model.interviews[0].clone();
    assert_eq!((interview.agent.as_str(), interview.cost_micro_usd), ("tess", 42));
    // Paid by the experimenter: tess's budget is whole.
    let tess = harness.state().model.principals.iter().find(|p| p.id.as_str() == "tess").unwrap().clone();
    assert_eq!(tess.llm_budget_micro_usd, 5000);
}

/// The checksum a status-bar notice gives, if it gives one.
fn checksum_in(text: &str) -> Option<&str> {
    let at = text.find("checksum ")? + "checksum ".len();
    text[at..].split_whitespace().next()
}

/// Steered by hand, with clicks and keys, then saved with “Save run…”: plain
/// `ecology run FILE` replays it headless to the step and checksum the window shows.
#[test]
fn a_run_saved_from_the_window_replays_headless_to_the_same_checksum() {
    use egui::{Key, Modifiers, accesskit::Role};
    let dir = tempfile::tempdir().unwrap();
    let mut harness = harness(default_app());
    let at_step = |harness: &mut Harness<'static, EcologyApp>, n: u64| {
        let reached =
            harness.state_mut().wait_for(WAIT, |m| m.status.as_ref().is_some_and(|s| s.steps == n && !s.playing));
        assert!(reached, "the world never stopped at step {n}");
        harness.step();
    };
    harness.get_by_label("⏭ Step").click();
    harness.step();
    at_step(&mut harness, 1);
    select_principal(&mut harness, "bob");
    harness.get_by_label("Grant scrip").click();
    harness.step();
    // Ten steps with Shift+→, one with “.”.
    harness.key_press_modifiers(Modifiers::SHIFT, Key::ArrowRight);
    harness.step();
    at_step(&mut harness, 11);
    harness.get_by_label("Freeze").click();
    harness.step();
    harness.key_press(Key::Period);
    harness.step();
    at_step(&mut harness, 12);
    // The grant was applied and said so: the status no longer says “queued”.
    assert!(harness.state_mut().wait_for(WAIT, |m| m.notices.iter().any(|n| n.text.contains("were applied"))));

    let path = dir.path().join("steered.ron");
    harness.get_by_label("Save run…").click();
    harness.run_steps(3);
    harness.get_by_role_and_label(Role::TextInput, "File").set_text_value_accesskit(&path.display().to_string());
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "Save").click();
    harness.run_steps(2);
    let saved =
        |m: &agent_ecology::gui::model::Model| m.notices.back().is_some_and(|n| n.text.contains("saved the run"));
    assert!(harness.state_mut().wait_for(WAIT, saved), "no notice of the save");
    harness.step();
    let notice = harness.state().model.notices.back().unwrap().clone();
    assert!(!notice.error, "{}", notice.text);
    let command = format!("`ecology run {}`", path.display());
    assert!(notice.text.contains(&command) && notice.text.contains("to step 12"), "{}", notice.text);
    // The window shows it.
    harness.get_by_label_contains(&command);
    let checksum = checksum_in(&notice.text).expect("a checksum in the notice").to_owned();

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ecology")).arg("run").arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("ran 12 steps"), "{stdout}");
    assert_eq!(checksum_in(&stdout), Some(checksum.as_str()), "{stdout}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("clock: Lockstep"), "a replay never waits on the wall clock:\n{text}");
}

#[test]
fn keys_play_pause_and_change_tabs() {
    use egui::Key;
    let mut harness = harness(default_app());
    harness.key_press(Key::Space);
    harness.step();
    assert!(harness.state_mut().wait_for(WAIT, |m| m.status.as_ref().is_some_and(|s| s.playing)));
    harness.key_press(Key::Space);
    harness.step();
    assert!(harness.state_mut().wait_for(WAIT, |m| m.status.as_ref().is_some_and(|s| !s.playing)));
    harness.key_press(Key::Num3);
    harness.step();
    assert_eq!(harness.state().tab, Tab::Artifacts);
    assert!(!harness.state().shows_frame_time());
    harness.key_press(Key::F);
    harness.step();
    harness.step();
    assert!(harness.state().shows_frame_time());
    harness.get_by_label_contains("frame ");
}

/// What agents write (arrows, signs) is drawn with glyphs, not boxes.
#[test]
fn the_window_has_glyphs_for_arrows_and_signs() {
    let harness = harness(default_app());
    let font = egui::FontId::proportional(14.0);
    for text in ["→ ← ↔ ⇒", "… — · µ", "≤ ≈ −", "┌─┐"] {
        assert!(harness.ctx.fonts_mut(|fonts| fonts.has_glyphs(&font, text)), "no glyph in {text}");
    }
}

/// A scene of one LLM agent, `tess`, thinking with the model `fake` serves.
fn llm_agent_scene(fake: &crate::fake_llm::FakeLlm) -> String {
    format!(
        r#"Scene(
            config: (llm: (default_model: "fake",
                endpoints: {{"local": (base_url: {url:?})}},
                models: {{"fake": (endpoint: "local", input_usd_per_mtok: 1.0, output_usd_per_mtok: 2.0)}})),
            principals: [(id: "tess", agent: true, llm_budget_usd: 1.0, capabilities: ["can_call_llm"],
                          code_file: "assets/agents/llm_agent.js", content: "A careful trader.",
                          interface: (tools: [(name: "step")]))],
        )"#,
        url = fake.base_url()
    )
}

/// Selects `id` through the session and waits until its inspector has arrived.
fn inspect(harness: &mut Harness<'static, EcologyApp>, id: &str) {
    let wanted = ArtifactId::parse(id).unwrap();
    harness.state_mut().select(Some(wanted.clone()));
    assert!(harness.state_mut().wait_for(WAIT, |m| m.detail.as_ref().is_some_and(|d| d.id == wanted)));
    harness.run_steps(4);
}

/// The inspector answers "why" on top — a frozen agent (with the reason), an LLM
/// agent thinking (with its last thought), a tool (its code first) — at the smallest
/// window size supported and at a large one, without overlapping text.
#[test]
fn snapshots_of_the_inspector_at_two_sizes() {
    use crate::fake_llm::{FakeLlm, Reply};
    let mut results = Vec::new();
    for (width, height) in [(1024.0, 700.0), (1600.0, 1000.0)] {
        let mut harness = harness(default_app());
        harness.set_size(egui::vec2(width, height));
        harness.state().send(agent_ecology::gui::Command::Step(200));
        assert!(
            harness.state_mut().wait_for(WAIT, |m| m.status.as_ref().is_some_and(|s| s.steps == 200 && !s.playing))
        );
        for id in ["heidi", "text_tools"] {
            inspect(&mut harness, id);
            if id == "heidi" {
                let state = harness.state().model.detail.as_ref().and_then(|d| d.principal.clone()).unwrap().state;
                assert_eq!(state.kind, agent_ecology::gui::session::StateKind::Frozen);
                assert!(harness.query_all_by_label_contains("is below the 5 a step needs").count() >= 1);
            }
            results.push(harness.try_snapshot(format!("inspector_{id}_{width}")));
        }
    }

    // An LLM agent thinking, after a first thought.
    let fake = FakeLlm::start();
    fake.set_default(Reply::text("I will watch the market for a while before I act → then buy.", 40, 12));
    let text = llm_agent_scene(&fake);
    // In lockstep the answer to a question asked at one step comes at the next, so
    // where the world stops is the same every time.
    let options =
        SessionOptions { clock: Some(agent_ecology::bridge::config::ClockMode::Lockstep), ..SessionOptions::default() };
    for (width, height) in [(1024.0, 700.0), (1600.0, 1000.0)] {
        let scene = Scene::from_ron_str("thinking.ron", &text).unwrap();
        let mut harness = harness(EcologyApp::new(Session::start(scene, options.clone())));
        harness.set_size(egui::vec2(width, height));
        inspect(&mut harness, "tess");
        let ready = |m: &agent_ecology::gui::model::Model| {
            m.detail
                .as_ref()
                .is_some_and(|d| !d.thoughts.is_empty() && d.principal.as_ref().is_some_and(|p| p.thinking))
        };
        let mut steps = 0;
        while !ready(&harness.state().model) {
            steps += 1;
            assert!(steps <= 20, "no step found it thinking after a thought");
            harness.state().send(agent_ecology::gui::Command::Step(1));
            let reached = harness
                .state_mut()
                .wait_for(WAIT, |m| m.status.as_ref().is_some_and(|s| s.steps == steps && !s.playing));
            assert!(reached);
            harness.state().send(agent_ecology::gui::Command::Refresh);
            std::thread::sleep(Duration::from_millis(100));
            harness.state_mut().absorb_updates();
        }
        harness.run_steps(4);
        assert!(harness.query_all_by_label_contains("waiting for the answer").count() >= 1);
        assert!(harness.query_all_by_label_contains("then buy").count() >= 1);
        results.push(harness.try_snapshot(format!("inspector_thinking_{width}")));
    }
    for result in results {
        result.unwrap();
    }
}

/// A replay that asks for a call never recorded stops the world, as `ecology run
/// --replay` exits: the agents are not fed a failure and left to go on.
#[test]
fn a_replay_miss_stops_the_world() {
    let recording = tempfile::tempdir().unwrap();
    let code = r#"function step(view) {
        return [{action: "invoke", id: "kernel_llm_gateway", method: "chat",
                 args: {messages: [{role: "user", content: "hello"}]}}];
    }"#;
    let text = format!(
        r#"Scene(config: (llm: (default_model: "gpt-4o-mini")),
                 principals: [(id: "tess", agent: true, capabilities: ["can_call_llm"], code: {code:?},
                              interface: (tools: [(name: "step")]))])"#
    );
    let scene = Scene::from_ron_str("miss.ron", &text).unwrap();
    let options = SessionOptions {
        bridge: agent_ecology::bridge::BridgeOptions { cache_dir: Some(recording.path().to_owned()), replay: true },
        playing: true,
        speed: agent_ecology::gui::Speed::Max,
        ..SessionOptions::default()
    };
    let mut harness = harness(EcologyApp::new(Session::start(scene, options)));
    let stopped =
        |m: &agent_ecology::gui::model::Model| m.status.as_ref().is_some_and(|s| s.fatal.is_some() && !s.playing);
    assert!(harness.state_mut().wait_for(WAIT, stopped), "the world went on after a replay miss");
    let at = steps(&harness);
    std::thread::sleep(Duration::from_millis(300));
    harness.state_mut().absorb_updates();
    assert_eq!(steps(&harness), at, "a stopped world does not step");
    // Play cannot start it again.
    harness.step();
    harness.get_by_label("▶ Play").click();
    harness.step();
    std::thread::sleep(Duration::from_millis(300));
    harness.state_mut().absorb_updates();
    assert_eq!(steps(&harness), at);
    assert!(harness.query_all_by_label_contains("stopped:").count() >= 1);
}

/// Back to step 100 of a run steered by hand: the tables are those of a headless
/// world stopped at step 100, and so is its checksum; the world of now comes back,
/// and going on from the past drops the later steps.
#[test]
fn travelling_back_to_step_100_shows_the_world_as_it_was() {
    use agent_ecology::gui::Command;
    let dir = tempfile::tempdir().unwrap();
    let mut harness = harness(default_app());
    let at = |harness: &mut Harness<'static, EcologyApp>, step: u64, present: Option<u64>| {
        let reached = harness.state_mut().wait_for(WAIT, |m| {
            m.status.as_ref().is_some_and(|s| s.steps == step && !s.playing && s.present_step == present)
        });
        assert!(reached, "never at step {step} with the present at {present:?}");
        harness.step();
    };
    harness.state().send(Command::Step(30));
    at(&mut harness, 30, None);
    let grant = SystemAct::GrantScrip { to: "bob".into(), amount: Amount(250) };
    harness.state().send(Command::Intervene(Box::new(InterventionAct::System(grant.clone()))));
    harness.state().send(Command::Step(120));
    at(&mut harness, 150, None);
    harness.get_by_label("Principals").click();
    harness.step();

    harness.state().send(Command::TravelTo(100));
    at(&mut harness, 100, Some(150));
    assert!(harness.state_mut().wait_for(WAIT, |m| !m.principals.is_empty()));
    harness.step();
    harness.get_by_label_contains("the past: step 100 of 150");

    let mut reference = agent_ecology::run::Simulation::new(&Scene::embedded_default().unwrap(), None).unwrap();
    reference.run_steps(30);
    let now = reference.now();
    reference
        .world_mut()
        .resource_mut::<Timeline>()
        .schedule(ScheduledIntervention { at: now, act: InterventionAct::System(grant) });
    reference.run_steps(70);
    let expected = agent_ecology::gui::session::principal_rows(reference.world());
    assert_eq!(*harness.state().model.principals, expected, "the principals table of step 100");
    harness.get_by_label("Artifacts").click();
    harness.step();
    assert!(harness.state_mut().wait_for(WAIT, |m| !m.artifacts.is_empty()));
    let expected = agent_ecology::gui::session::artifact_rows(reference.world());
    assert_eq!(*harness.state().model.artifacts, expected, "the artifacts table of step 100");
    let checkpoint = dir.path().join("past.checkpoint");
    harness.state().send(Command::SaveCheckpoint(checkpoint.clone()));
    assert!(harness.state_mut().wait_for(WAIT, |m| m.notices.iter().any(|n| n.text.contains("past.checkpoint"))));
    let saved = agent_ecology::run::Checkpoint::read(&checkpoint).unwrap();
    assert_eq!((saved.info.step, saved.info.checksum.as_str()), (100, reference.checksum().as_str()));

    // One step further back with the keyboard.
    harness.key_press(egui::Key::ArrowLeft);
    harness.step();
    at(&mut harness, 99, Some(150));

    // Back to now, then back again and on from there: a branch.
    harness.get_by_label("Return to now").click();
    harness.step();
    at(&mut harness, 150, None);
    harness.state().send(Command::TravelTo(100));
    at(&mut harness, 100, Some(150));
    harness.state().send(Command::Step(1));
    at(&mut harness, 101, None);
    assert!(
        harness.state().model.notices.iter().any(|n| n.text.contains("the steps after it (up to 150) are dropped"))
    );
}

/// A run whose agent thinks with a model, recorded in lockstep, goes back in time
/// exactly: step 4 seen from step 8 is the world a headless replay of the recording
/// reaches at step 4.
#[test]
fn a_recorded_llm_run_goes_back_in_time_exactly() {
    use crate::fake_llm::{FakeLlm, Reply};
    use agent_ecology::gui::Command;
    let fake = FakeLlm::start();
    fake.set_default(Reply::text("I will wait and see.", 40, 12));
    let recording = tempfile::tempdir().unwrap();
    let text = llm_agent_scene(&fake);
    let scene = Scene::from_ron_str("recorded.ron", &text).unwrap();
    let options = SessionOptions {
        clock: Some(agent_ecology::bridge::config::ClockMode::Lockstep),
        bridge: agent_ecology::bridge::BridgeOptions { cache_dir: Some(recording.path().to_owned()), replay: false },
        ..SessionOptions::default()
    };
    let session = Session::start(scene.clone(), options);
    session.send(Command::Step(8));
    wait_steps(&session, 8);
    session.send(Command::TravelTo(4));
    let notice = wait_notice(&session, "showing step 4");
    assert!(!notice.error, "{}", notice.text);
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("step4.checkpoint");
    session.send(Command::SaveCheckpoint(checkpoint.clone()));
    assert!(!wait_notice(&session, "checkpoint").error);
    let seen = agent_ecology::run::Checkpoint::read(&checkpoint).unwrap().info;
    assert!(fake.request_count() >= 2, "the agent thought");

    let mut replay = agent_ecology::run::Simulation::new(&scene, None).unwrap();
    replay
        .use_bridge(agent_ecology::bridge::BridgeOptions { cache_dir: Some(recording.path().to_owned()), replay: true })
        .unwrap();
    replay.run_steps(4);
    assert_eq!((seen.step, seen.checksum), (4, replay.checksum()));
}

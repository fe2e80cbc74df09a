//! The generator: a proptest-state-machine reference machine over an *abstract* state (which
//! slots exist, which are live, which containers were started). It only steers generation
//! toward meaningful sequences — calls on live objects most of the time, on removed and
//! never-existing ones sometimes — and keeps slot references valid while shrinking. Whether a
//! reply is right is decided by the checking model in `model.rs`, from what actually happened.

use proptest::prelude::*;
use proptest::strategy::Union;
use proptest_state_machine::ReferenceStateMachine;

use super::call::{
    Call, Cmd, ContainerFilter, ContainerStateFilter, ExecCmd, PodFilter, PodStateFilter, Ref,
};

/// Live pods a sequence may hold at once; keeps a step's cost bounded on slow targets.
pub const MAX_LIVE_PODS: usize = 3;
/// Live containers a sequence may hold at once.
pub const MAX_LIVE_CONTAINERS: usize = 6;
/// Values of the `cricket.prop` label; few, so label filters match something.
pub const LABELS: u8 = 3;

#[derive(Debug, Clone, Default)]
pub struct APod {
    pub live: bool,
    pub ready: bool,
}

#[derive(Debug, Clone, Default)]
pub struct AContainer {
    pub pod: usize,
    pub live: bool,
    pub started: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Abstract {
    pub pods: Vec<APod>,
    pub containers: Vec<AContainer>,
    /// Whether `property-1`/`property-2` are pulled.
    pub pulled: [bool; 2],
    /// Sequences that run beside others leave the (shared) image store alone.
    pub images: bool,
}

impl Abstract {
    fn live_pods(&self) -> usize {
        self.pods.iter().filter(|p| p.live).count()
    }

    fn live_containers(&self) -> usize {
        self.containers.iter().filter(|c| c.live).count()
    }
}

/// A reference to one of `n` slots: live ones most often, removed ones sometimes, a
/// never-existing id now and then. `prefer` picks the slots a call is most interesting on.
fn slot_ref(live: Vec<u8>, gone: Vec<u8>, prefer: Vec<u8>) -> BoxedStrategy<Ref> {
    // Shrinking walks toward earlier arms: the preferred slots first, a never-existing id last.
    let mut arms: Vec<(u32, BoxedStrategy<Ref>)> = Vec::new();
    if !prefer.is_empty() {
        arms.push((
            12,
            proptest::sample::select(prefer).prop_map(Ref::Slot).boxed(),
        ));
    }
    if !live.is_empty() {
        arms.push((
            6,
            proptest::sample::select(live).prop_map(Ref::Slot).boxed(),
        ));
    }
    if !gone.is_empty() {
        arms.push((
            2,
            proptest::sample::select(gone).prop_map(Ref::Slot).boxed(),
        ));
    }
    arms.push((1, Just(Ref::Never).boxed()));
    Union::new_weighted(arms).boxed()
}

fn slots<T>(v: &[T], pick: impl Fn(&T) -> bool) -> Vec<u8> {
    v.iter()
        .enumerate()
        .filter(|(_, x)| pick(x))
        .filter_map(|(i, _)| u8::try_from(i).ok())
        .collect()
}

fn pod_ref(s: &Abstract, prefer: impl Fn(&APod) -> bool) -> BoxedStrategy<Ref> {
    slot_ref(
        slots(&s.pods, |p| p.live),
        slots(&s.pods, |p| !p.live),
        slots(&s.pods, |p| p.live && prefer(p)),
    )
}

fn container_ref(s: &Abstract, prefer: impl Fn(&AContainer) -> bool) -> BoxedStrategy<Ref> {
    slot_ref(
        slots(&s.containers, |c| c.live),
        slots(&s.containers, |c| !c.live),
        slots(&s.containers, |c| c.live && prefer(c)),
    )
}

fn cmd() -> BoxedStrategy<Cmd> {
    prop_oneof![
        3 => Just(Cmd::Pause),
        3 => (0u8..4).prop_map(Cmd::Exit),
        1 => Just(Cmd::IgnoreTerm),
        2 => (1u8..4).prop_map(Cmd::Log),
    ]
    .boxed()
}

fn exec_cmd() -> BoxedStrategy<ExecCmd> {
    prop_oneof![
        (0u16..1000).prop_map(ExecCmd::Echo),
        (0u8..4).prop_map(ExecCmd::Exit),
    ]
    .boxed()
}

fn opt<T: std::fmt::Debug + Clone + 'static>(s: BoxedStrategy<T>) -> BoxedStrategy<Option<T>> {
    prop_oneof![2 => Just(None), 1 => s.prop_map(Some)].boxed()
}

fn pod_filter(s: &Abstract) -> BoxedStrategy<PodFilter> {
    let state = prop_oneof![Just(PodStateFilter::Ready), Just(PodStateFilter::NotReady)].boxed();
    (
        opt(pod_ref(s, |_| true)),
        opt(state),
        opt((0..LABELS).boxed()),
    )
        .prop_map(|(id, state, label)| PodFilter { id, state, label })
        .boxed()
}

fn container_filter(s: &Abstract) -> BoxedStrategy<ContainerFilter> {
    let state = prop_oneof![
        Just(ContainerStateFilter::Running),
        Just(ContainerStateFilter::Created),
        Just(ContainerStateFilter::Exited),
    ]
    .boxed();
    (
        opt(container_ref(s, |_| true)),
        opt(pod_ref(s, |_| true)),
        prop_oneof![1 => Just(None), 2 => state.prop_map(Some)].boxed(),
        opt((0..LABELS).boxed()),
    )
        .prop_map(|(id, pod, state, label)| ContainerFilter {
            id,
            pod,
            state,
            label,
        })
        .boxed()
}

/// Generation for sequences that own the image store (`IMAGES = true`) or share it.
#[derive(Debug, Clone, Copy)]
pub struct Machine<const IMAGES: bool>;

impl<const IMAGES: bool> ReferenceStateMachine for Machine<IMAGES> {
    type State = Abstract;
    type Transition = Call;

    fn init_state() -> BoxedStrategy<Abstract> {
        Just(Abstract {
            images: IMAGES,
            ..Abstract::default()
        })
        .boxed()
    }

    fn transitions(s: &Abstract) -> BoxedStrategy<Call> {
        let mut arms: Vec<(u32, BoxedStrategy<Call>)> = Vec::new();
        if s.live_pods() < MAX_LIVE_PODS {
            let w = if s.live_pods() == 0 { 12 } else { 3 };
            arms.push((
                w,
                (0..LABELS)
                    .prop_map(|label| Call::RunPodSandbox { label })
                    .boxed(),
            ));
        }
        if !s.pods.is_empty() {
            arms.push((
                2,
                pod_ref(s, |p| p.ready)
                    .prop_map(|pod| Call::StopPodSandbox { pod })
                    .boxed(),
            ));
            arms.push((
                2,
                pod_ref(s, |_| true)
                    .prop_map(|pod| Call::RemovePodSandbox { pod })
                    .boxed(),
            ));
            arms.push((
                1,
                pod_ref(s, |_| true)
                    .prop_map(|pod| Call::PodSandboxStatus { pod })
                    .boxed(),
            ));
            arms.push((
                1,
                pod_filter(s)
                    .prop_map(|filter| Call::ListPodSandbox { filter })
                    .boxed(),
            ));
            if s.live_containers() < MAX_LIVE_CONTAINERS {
                let images = if s.images { 0u8..3 } else { 0u8..1 };
                arms.push((
                    6,
                    (pod_ref(s, |p| p.ready), cmd(), images, 0..LABELS)
                        .prop_map(|(pod, cmd, image, label)| Call::CreateContainer {
                            pod,
                            cmd,
                            image,
                            label,
                        })
                        .boxed(),
                ));
            }
        }
        if !s.containers.is_empty() {
            arms.push((
                6,
                container_ref(s, |c| !c.started)
                    .prop_map(|container| Call::StartContainer { container })
                    .boxed(),
            ));
            arms.push((
                3,
                (
                    container_ref(s, |c| c.started),
                    prop_oneof![3 => Just(0u8), 1 => Just(1u8)],
                )
                    .prop_map(|(container, timeout)| Call::StopContainer { container, timeout })
                    .boxed(),
            ));
            arms.push((
                2,
                container_ref(s, |_| true)
                    .prop_map(|container| Call::RemoveContainer { container })
                    .boxed(),
            ));
            arms.push((
                2,
                container_ref(s, |_| true)
                    .prop_map(|container| Call::ContainerStatus { container })
                    .boxed(),
            ));
            arms.push((
                3,
                container_filter(s)
                    .prop_map(|filter| Call::ListContainers { filter })
                    .boxed(),
            ));
            arms.push((
                2,
                (container_ref(s, |c| c.started), exec_cmd())
                    .prop_map(|(container, cmd)| Call::ExecSync { container, cmd })
                    .boxed(),
            ));
            arms.push((
                1,
                (
                    container_ref(s, |_| true),
                    prop_oneof![Just(256u16), Just(128u16)],
                )
                    .prop_map(|(container, memory_mib)| Call::UpdateContainerResources {
                        container,
                        memory_mib,
                    })
                    .boxed(),
            ));
        }
        if s.images {
            arms.push((
                1,
                (1u8..3).prop_map(|image| Call::PullImage { image }).boxed(),
            ));
            arms.push((
                1,
                (1u8..3)
                    .prop_map(|image| Call::RemoveImage { image })
                    .boxed(),
            ));
            arms.push((
                1,
                (1u8..3)
                    .prop_map(|image| Call::ImageStatus { image })
                    .boxed(),
            ));
        }
        Union::new_weighted(arms).boxed()
    }

    fn preconditions(s: &Abstract, call: &Call) -> bool {
        let pod_ok = |r: Ref| match r {
            Ref::Slot(n) => usize::from(n) < s.pods.len(),
            Ref::Never => true,
        };
        let ctr_ok = |r: Ref| match r {
            Ref::Slot(n) => usize::from(n) < s.containers.len(),
            Ref::Never => true,
        };
        let image_ok = |i: u8| s.images && (1..3).contains(&i);
        match *call {
            Call::RunPodSandbox { .. } => s.live_pods() < MAX_LIVE_PODS,
            Call::StopPodSandbox { pod }
            | Call::RemovePodSandbox { pod }
            | Call::PodSandboxStatus { pod } => pod_ok(pod),
            Call::ListPodSandbox { filter } => filter.id.is_none_or(pod_ok),
            Call::CreateContainer { pod, image, .. } => {
                pod_ok(pod)
                    && s.live_containers() < MAX_LIVE_CONTAINERS
                    && (image == 0 || image_ok(image))
            }
            Call::StartContainer { container }
            | Call::StopContainer { container, .. }
            | Call::RemoveContainer { container }
            | Call::ContainerStatus { container }
            | Call::ExecSync { container, .. }
            | Call::UpdateContainerResources { container, .. } => ctr_ok(container),
            Call::ListContainers { filter } => {
                filter.id.is_none_or(ctr_ok) && filter.pod.is_none_or(pod_ok)
            }
            Call::PullImage { image }
            | Call::RemoveImage { image }
            | Call::ImageStatus { image } => image_ok(image),
        }
    }

    fn apply(mut s: Abstract, call: &Call) -> Abstract {
        let pod_slot = |r: Ref| match r {
            Ref::Slot(n) => Some(usize::from(n)),
            Ref::Never => None,
        };
        match *call {
            Call::RunPodSandbox { .. } => s.pods.push(APod {
                live: true,
                ready: true,
            }),
            Call::StopPodSandbox { pod } => {
                if let Some(p) = pod_slot(pod).and_then(|i| s.pods.get_mut(i)) {
                    p.ready = false;
                }
            }
            Call::RemovePodSandbox { pod } => {
                if let Some(i) = pod_slot(pod) {
                    if let Some(p) = s.pods.get_mut(i) {
                        p.live = false;
                        p.ready = false;
                    }
                    for c in s.containers.iter_mut().filter(|c| c.pod == i) {
                        c.live = false;
                    }
                }
            }
            Call::CreateContainer { pod, image, .. } => {
                // Every create takes a slot; it is live only where creation should succeed.
                let i = pod_slot(pod);
                let ok_pod = i.and_then(|i| s.pods.get(i)).is_some_and(|p| p.ready);
                let ok_image = image == 0 || s.pulled[usize::from(image) - 1];
                s.containers.push(AContainer {
                    pod: i.unwrap_or(usize::MAX),
                    live: ok_pod && ok_image,
                    started: false,
                });
            }
            Call::StartContainer { container } => {
                if let Some(c) = pod_slot(container).and_then(|i| s.containers.get_mut(i)) {
                    c.started = c.live;
                }
            }
            Call::RemoveContainer { container } => {
                if let Some(c) = pod_slot(container).and_then(|i| s.containers.get_mut(i)) {
                    c.live = false;
                }
            }
            Call::PullImage { image } => {
                if let Some(p) = s.pulled.get_mut(usize::from(image).wrapping_sub(1)) {
                    *p = true;
                }
            }
            Call::RemoveImage { image } => {
                if let Some(p) = s.pulled.get_mut(usize::from(image).wrapping_sub(1)) {
                    *p = false;
                }
            }
            Call::PodSandboxStatus { .. }
            | Call::ListPodSandbox { .. }
            | Call::StopContainer { .. }
            | Call::ContainerStatus { .. }
            | Call::ListContainers { .. }
            | Call::ExecSync { .. }
            | Call::UpdateContainerResources { .. }
            | Call::ImageStatus { .. } => {}
        }
        s
    }
}

/// Whether a hand-edited sequence (a replay file, a greedy shrink) is one the generator could
/// have produced: every slot it names exists and the live-object limits hold.
pub fn valid(calls: &[Call], images: bool) -> bool {
    fn check<const I: bool>(calls: &[Call]) -> bool {
        let mut s = Abstract {
            images: I,
            ..Abstract::default()
        };
        for c in calls {
            if !Machine::<I>::preconditions(&s, c) {
                return false;
            }
            s = Machine::<I>::apply(s, c);
        }
        true
    }
    if images {
        check::<true>(calls)
    } else {
        check::<false>(calls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    fn runner(seed: u8) -> TestRunner {
        TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
        )
    }

    /// The same seed gives the same sequence; generated slot references are always valid.
    #[test]
    fn generation_is_seeded_and_references_valid_slots() {
        let strategy = Machine::<true>::sequential_strategy(1..=30);
        let a = strategy.new_tree(&mut runner(7)).expect("tree").current().1;
        let b = strategy.new_tree(&mut runner(7)).expect("tree").current().1;
        assert_eq!(a, b);
        for seed in 0..40 {
            let (init, calls, _) = strategy
                .new_tree(&mut runner(seed))
                .expect("tree")
                .current();
            let mut s = init;
            for c in &calls {
                assert!(
                    Machine::<true>::preconditions(&s, c),
                    "{c} invalid in {s:?}"
                );
                s = Machine::<true>::apply(s, c);
            }
            assert!(s.live_pods() <= MAX_LIVE_PODS);
        }
    }

    #[test]
    fn shared_sequences_leave_images_alone() {
        let strategy = Machine::<false>::sequential_strategy(30..=30);
        for seed in 0..20 {
            let calls = strategy
                .new_tree(&mut runner(seed))
                .expect("tree")
                .current()
                .1;
            assert!(calls.iter().all(|c| !matches!(
                c,
                Call::PullImage { .. } | Call::RemoveImage { .. } | Call::ImageStatus { .. }
            ) && !matches!(c, Call::CreateContainer { image, .. } if *image != 0)));
        }
    }
}

package controllers

// TransformPod is the pod cache's transform: it turns a *corev1.Pod into
// what the operator keeps of it (a cachedPod: the engine's view, converted
// once by translate.PodOf, with its strings shared between pods). Anything
// else passes through. It is exported for the benchmark, which measures
// the cache's memory per pod.
func TransformPod(in any) (any, error) { return toCachedPod(in) }

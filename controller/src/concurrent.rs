//! Running one piece of work per host at once, results kept in host order.

use std::future::Future;

use tokio::task::JoinSet;

/// Runs `f` on every item at once and returns the results in item order. A panic in one of
/// them is re-raised here.
pub async fn each<I, T, F, Fut>(items: &[I], f: F) -> Vec<T>
where
    I: Clone,
    F: Fn(I) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut set = JoinSet::new();
    for (index, item) in items.iter().enumerate() {
        let fut = f(item.clone());
        set.spawn(async move { (index, fut.await) });
    }
    let mut results: Vec<(usize, T)> = Vec::with_capacity(items.len());
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(v) => results.push(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, v)| v).collect()
}

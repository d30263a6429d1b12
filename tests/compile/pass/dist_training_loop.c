/* A data-parallel training step with the umbrella header: process group,
 * data parallel, ZeRO-1, Muon and Muon with DistAdam compile in user code
 * with no extra flags. */
#include <tyr/tyr.h>

int step(tyr_params *ps, tyr_tensor *loss, int zero) {
  tyr_dist *pg = tyr_dist_init(NULL);
  if (!pg) return 1;
  int st = 0;
  if (zero == 1) {
    tyr_zero1 *z = tyr_zero1_init(pg, ps, tyr_adamw_config(1e-3));
    st = tyr_backward_e(loss) || tyr_zero1_step(z, -1, 1.0, NULL);
    tyr_zero1_free(z);
  } else if (zero == 0) {
    tyr_ddp *d = tyr_ddp_init(pg, ps, NULL);
    tyr_muon m;
    tyr_muon_config mc = tyr_muon_default_config(0.02, 1e-3);
    mc.ortho = TYR_MUON_POLAR_EXPRESS;
    st = tyr_muon_init(&m, ps, &mc, pg) || tyr_backward_e(loss) || tyr_ddp_finish(d) ||
         tyr_muon_step(&m, 1.0);
    tyr_muon_free(&m);
    tyr_ddp_free(d);
  } else { /* DistAdam: the AdamW gradients reduce-scattered by the step */
    tyr_muon m;
    tyr_muon_config mc = tyr_muon_default_config(0.02, 1e-3);
    mc.reduce_adamw_grads = true;
    st = tyr_muon_init(&m, ps, &mc, pg);
    tyr_ddp *d = tyr_ddp_init(pg, &m.matrices, NULL);
    st = st || tyr_backward_e(loss) || tyr_ddp_finish(d) || tyr_muon_step(&m, 1.0);
    tyr_optim *whole = tyr_muon_gather_adamw(&m); /* for tyr_checkpoint_save */
    st = st || !whole || tyr_muon_scatter_adamw(&m, whole) || tyr_muon_state_bytes(&m) < 0;
    tyr_muon_release_adamw(&m, whole);
    tyr_muon_free(&m);
    tyr_ddp_free(d);
  }
  double avg = tyr_dist_reduce_scalar(pg, 1.0, TYR_DIST_AVG);
  tyr_dist_free(pg);
  return st || avg != 1.0;
}

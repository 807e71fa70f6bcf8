/*
 * Learning-rate schedules: linear warm-up, then a constant rate or a
 * cosine decay to a minimum (nanoGPT's get_lr). Plain functions of the
 * settings and the step, computed in double.
 */
#include <math.h>
#include <string.h>

#include "base/error.h"
#include "base/params.h"

TLM_API int tlm_schedule_params_init(tlm_schedule_params *params) {
    TLMI_PARAMS_INIT("tlm_schedule_params_init", params);
    params->kind = TLM_SCHEDULE_CONSTANT;
    params->lr = 1e-3f;
    params->min_lr = 0.0f;
    params->warmup_start_factor = 0.0f;
    params->warmup_steps = 0;
    params->decay_end_step = 0;
    return TLM_OK;
}

static int check_schedule(const tlm_schedule_params *p) {
    if (p->kind != TLM_SCHEDULE_CONSTANT && p->kind != TLM_SCHEDULE_COSINE)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_schedule_lr: params.kind %d is not "
                                "TLM_SCHEDULE_CONSTANT (0) or "
                                "TLM_SCHEDULE_COSINE (1)",
                                (int)p->kind);
    if (!isfinite(p->lr) || p->lr < 0.0f)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_schedule_lr: params.lr %g is not finite "
                                "and >= 0",
                                (double)p->lr);
    if (!(p->warmup_start_factor >= 0.0f && p->warmup_start_factor <= 1.0f))
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_schedule_lr: params.warmup_start_factor "
                                "%g is outside [0, 1]",
                                (double)p->warmup_start_factor);
    if (p->warmup_steps < 0)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_schedule_lr: params.warmup_steps %lld is "
                                "negative",
                                (long long)p->warmup_steps);
    if (p->kind == TLM_SCHEDULE_COSINE) {
        if (!(p->min_lr >= 0.0f && p->min_lr <= p->lr))
            return tlmi_fail_thread(TLM_E_INVALID,
                                    "tlm_schedule_lr: params.min_lr %g is "
                                    "outside [0, lr = %g]",
                                    (double)p->min_lr, (double)p->lr);
        if (p->decay_end_step <= p->warmup_steps)
            return tlmi_fail_thread(TLM_E_INVALID,
                                    "tlm_schedule_lr: params.decay_end_step "
                                    "%lld is not after warmup_steps %lld (the "
                                    "cosine needs at least one step)",
                                    (long long)p->decay_end_step,
                                    (long long)p->warmup_steps);
    }
    return TLM_OK;
}

TLM_API int tlm_schedule_lr(const tlm_schedule_params *given, int64_t step,
                            float *lr) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_schedule_lr", lr);
    *lr = 0.0f;
    TLMI_CHECK(NULL, given != NULL, TLM_E_INVALID,
               "tlm_schedule_lr: params is NULL");
    tlm_schedule_params p;
    tlm_schedule_params_init(&p);
    TLMI_TRY(tlmi_params_merge(NULL, "tlm_schedule_lr: params", &p, sizeof p,
                               given));
    int status = check_schedule(&p);
    if (status != TLM_OK)
        return status;
    if (step < 0)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_schedule_lr: step %lld is negative",
                                (long long)step);

    const double peak = (double)p.lr;
    double rate;
    if (step < p.warmup_steps) {
        /* Linear from peak * start_factor at step 0 towards the peak,
         * which step W reaches. */
        const double f = (double)p.warmup_start_factor;
        rate = peak * (f + (1.0 - f) * (double)step / (double)p.warmup_steps);
    } else if (p.kind == TLM_SCHEDULE_CONSTANT) {
        rate = peak;
    } else if (step >= p.decay_end_step) {
        rate = (double)p.min_lr;
    } else {
        const double pi = 3.14159265358979323846;
        const double ratio = (double)(step - p.warmup_steps) /
                             (double)(p.decay_end_step - p.warmup_steps);
        const double low = (double)p.min_lr;
        rate = low + 0.5 * (1.0 + cos(pi * ratio)) * (peak - low);
    }
    *lr = (float)rate;
    return TLM_OK;
}

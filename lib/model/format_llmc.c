/* llm.c GPT-2 checkpoints (written below). */
#include "base/error.h"
#include "formats.h"

int tlmi_llmc_import_buffer(tlm_model **out, tlm_context *ctx,
                            const char *what, const void *data, size_t size) {
    (void)out; (void)data; (void)size;
    return tlmi_fail(NULL, TLM_E_UNSUPPORTED, "'%s': llm.c import is not written yet", what);
    (void)ctx;
}
int tlmi_llmc_import_file(tlm_model **out, tlm_context *ctx, const char *path) {
    return tlmi_llmc_import_buffer(out, ctx, path, NULL, 0);
}
int tlmi_llmc_export(const tlm_model *model, const char *path, int32_t weight_type) {
    (void)model; (void)weight_type;
    return tlmi_fail(NULL, TLM_E_UNSUPPORTED, "'%s': llm.c export is not written yet", path);
}

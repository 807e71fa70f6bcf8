#include "tensor.h"

#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "context.h"
#include "kernels/weights.h"

size_t tlmi_dtype_size(int32_t dtype) {
    switch (dtype) {
    case TLM_DTYPE_F32:
        return sizeof(float);
    case TLM_DTYPE_I32:
        return sizeof(int32_t);
    case TLM_DTYPE_BF16:
        return sizeof(uint16_t);
    case TLM_DTYPE_Q8:
        return sizeof(int8_t); /* the scales come on top: tlmi_tensor_data_bytes */
    default:
        return 0;
    }
}

const char *tlmi_dtype_name(int32_t dtype) {
    switch (dtype) {
    case TLM_DTYPE_F32:
        return "f32";
    case TLM_DTYPE_I32:
        return "i32";
    case TLM_DTYPE_BF16:
        return "bf16";
    case TLM_DTYPE_Q8:
        return "q8";
    default:
        return "an unknown dtype";
    }
}

int32_t tlmi_weight_format_of_dtype(int32_t dtype) {
    return dtype == TLM_DTYPE_BF16 ? TLM_WEIGHTS_BF16
           : dtype == TLM_DTYPE_Q8 ? TLM_WEIGHTS_INT8
                                   : TLM_WEIGHTS_F32;
}

int32_t tlmi_dtype_of_weight_format(int32_t format) {
    return format == TLM_WEIGHTS_BF16   ? TLM_DTYPE_BF16
           : format == TLM_WEIGHTS_INT8 ? TLM_DTYPE_Q8
                                        : TLM_DTYPE_F32;
}

int tlmi_dtype_is_quantized(int32_t dtype) {
    return dtype == TLM_DTYPE_BF16 || dtype == TLM_DTYPE_Q8;
}

size_t tlmi_tensor_data_bytes(const tlm_tensor *tensor) {
    if (tlmi_dtype_is_quantized(tensor->dtype))
        return tlmi_weights_bytes(tlmi_weight_format_of_dtype(tensor->dtype),
                                  tensor->shape[0], tensor->shape[1]);
    return (size_t)tensor->numel * tlmi_dtype_size(tensor->dtype);
}

tlmi_weights tlmi_tensor_weights(const tlm_tensor *tensor) {
    const tlmi_weights w = {tlmi_weight_format_of_dtype(tensor->dtype),
                            tensor->shape[0], tensor->shape[1], tensor->data};
    return w;
}

int tlmi_tensor_check(const tlm_tensor *tensor, const char *what) {
    if (tensor == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "%s is NULL", what);
    if (tensor->magic != TLMI_TENSOR_MAGIC)
        return tlmi_fail_thread(TLM_E_STATE,
                                "%s is not a live tensor (it was freed)",
                                what);
    if (!tensor->is_leaf && tensor->generation != tensor->ctx->generation)
        return tlmi_fail(&tensor->ctx->host, TLM_E_STATE,
                         "%s is a result from before tlm_context_reset and "
                         "no longer valid",
                         what);
    return TLM_OK;
}

const char *tlmi_dims_string(int32_t ndim, const int64_t *shape, char *buf,
                             size_t size) {
    size_t used = 0;
    used += (size_t)snprintf(buf, size, "[");
    for (int32_t i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld",
                                 i ? ", " : "", (long long)shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

const char *tlmi_shape_string(const tlm_tensor *tensor, char *buf,
                              size_t size) {
    return tlmi_dims_string(tensor->ndim, tensor->shape, buf, size);
}

const char *tlmi_index_string(const tlm_tensor *tensor, int64_t at, char *buf,
                              size_t size) {
    int64_t index[TLM_MAX_DIMS] = {0};
    for (int32_t i = tensor->ndim - 1; i >= 0; i--) {
        index[i] = at % tensor->shape[i];
        at /= tensor->shape[i];
    }
    size_t used = 0;
    buf[0] = '\0';
    for (int32_t i = 0; i < tensor->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "[%lld]",
                                 (long long)index[i]);
    return buf;
}

int tlmi_shape_numel(tlmi_host *host, const char *what, int32_t dtype,
                     int32_t ndim, const int64_t *shape, int64_t *numel) {
    size_t element = tlmi_dtype_size(dtype);
    if (element == 0)
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: dtype %d is not a tlm_dtype", what, (int)dtype);
    if (ndim < 1 || ndim > TLM_MAX_DIMS)
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: ndim %d is outside 1..%d", what, (int)ndim,
                         TLM_MAX_DIMS);
    TLMI_CHECK_NOT_NULL(host, what, shape);
    /* Bytes must fit in an int64 and in a size_t, with room for the
     * gradient beside it. */
    const int64_t limit = (int64_t)((SIZE_MAX / 4 < (size_t)INT64_MAX / 4)
                                        ? SIZE_MAX / 4
                                        : (size_t)INT64_MAX / 4) /
                          (int64_t)element;
    int64_t count = 1;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return tlmi_fail(host, TLM_E_INVALID,
                             "%s: shape[%d] is %lld; sizes must be >= 1",
                             what, (int)i, (long long)shape[i]);
        if (count > limit / shape[i])
            return tlmi_fail(host, TLM_E_OVERFLOW,
                             "%s: the shape's element count overflows "
                             "(dimension %d = %lld)",
                             what, (int)i, (long long)shape[i]);
        count *= shape[i];
    }
    *numel = count;
    return TLM_OK;
}

void tlmi_tensor_init_header(tlm_tensor *tensor, tlm_context *ctx,
                             int32_t dtype, int32_t ndim,
                             const int64_t *shape, int64_t numel) {
    tensor->magic = TLMI_TENSOR_MAGIC;
    tensor->ctx = ctx;
    tensor->dtype = dtype;
    tensor->ndim = ndim;
    for (int32_t i = 0; i < ndim; i++)
        tensor->shape[i] = shape[i];
    tensor->numel = numel;
}

/* Fills a fresh struct as a leaf over `values` and puts it on the
 * context's leaf list. */
static void init_leaf(tlm_context *ctx, tlm_tensor *tensor, int32_t dtype,
                      int32_t ndim, const int64_t *shape, int64_t numel,
                      void *values, size_t owned_bytes) {
    tlmi_tensor_init_header(tensor, ctx, dtype, ndim, shape, numel);
    tensor->data = values;
    tensor->data_bytes = owned_bytes;
    tensor->is_leaf = 1;
    tensor->next = ctx->leaves;
    if (ctx->leaves != NULL)
        ctx->leaves->prev = tensor;
    ctx->leaves = tensor;
}

static int create_leaf(tlm_tensor **out, tlm_context *ctx, int32_t dtype,
                       int32_t ndim, const int64_t *shape, const void *data,
                       const char *what) {
    TLMI_CHECK_NOT_NULL(NULL, what, out);
    *out = NULL;
    TLMI_CHECK_NOT_NULL(NULL, what, ctx);
    if (tlmi_dtype_is_quantized(dtype))
        return tlmi_fail(&ctx->host, TLM_E_INVALID,
                         "%s: dtype %s holds the matrices of a quantized "
                         "model (tlm_model_quantize); it is not for new "
                         "tensors",
                         what, tlmi_dtype_name(dtype));
    int64_t numel = 0;
    int status = tlmi_shape_numel(&ctx->host, what, dtype, ndim, shape, &numel);
    if (status != TLM_OK)
        return status;
    size_t bytes = (size_t)numel * tlmi_dtype_size(dtype);
    tlm_tensor *tensor = tlmi_context_take_struct(ctx);
    void *values = tensor ? tlmi_host_alloc(&ctx->host, bytes, 64) : NULL;
    if (values == NULL) {
        if (tensor != NULL)
            tlmi_context_give_struct(ctx, tensor);
        return tlmi_fail(&ctx->host, TLM_E_NOMEM,
                         "%s: allocating %zu bytes failed", what, bytes);
    }
    if (data != NULL)
        memcpy(values, data, bytes);
    else
        memset(values, 0, bytes);
    init_leaf(ctx, tensor, dtype, ndim, shape, numel, values, bytes);
    *out = tensor;
    return TLM_OK;
}

/* A leaf over memory it does not own (0 bytes: tlm_tensor_free leaves the
 * data alone). */
static int create_unowned(tlm_tensor **out, tlm_context *ctx, int32_t dtype,
                          int32_t ndim, const int64_t *shape, void *data,
                          int read_only) {
    *out = NULL;
    int64_t numel = 0;
    int status = tlmi_shape_numel(&ctx->host, "tensor", dtype, ndim, shape, &numel);
    if (status != TLM_OK)
        return status;
    tlm_tensor *tensor = tlmi_context_take_struct(ctx);
    if (tensor == NULL)
        return tlmi_fail(&ctx->host, TLM_E_NOMEM, "tensor: out of memory");
    init_leaf(ctx, tensor, dtype, ndim, shape, numel, data, 0);
    tensor->read_only = read_only;
    *out = tensor;
    return TLM_OK;
}

int tlmi_tensor_create_borrowed(tlm_tensor **out, tlm_context *ctx,
                                int32_t dtype, int32_t ndim,
                                const int64_t *shape, const void *data) {
    /* Never written through: read_only. */
    return create_unowned(out, ctx, dtype, ndim, shape,
                          (void *)(uintptr_t)data, 1);
}

int tlmi_tensor_create_view(tlm_tensor **out, tlm_context *ctx, int32_t dtype,
                            int32_t ndim, const int64_t *shape, void *data) {
    return create_unowned(out, ctx, dtype, ndim, shape, data, 0);
}

/* create_leaf from the caller's data, which is checked first (before
 * out), and on the context when there is one. */
static int create_from(tlm_tensor **out, tlm_context *ctx, int32_t dtype,
                       int32_t ndim, const int64_t *shape, const void *data,
                       const char *what) {
    if (data == NULL) {
        if (out != NULL)
            *out = NULL;
        return tlmi_fail(ctx ? &ctx->host : NULL, TLM_E_INVALID,
                         "%s: data is NULL", what);
    }
    return create_leaf(out, ctx, dtype, ndim, shape, data, what);
}

TLM_API int tlm_tensor_create(tlm_tensor **out, tlm_context *ctx,
                              int32_t dtype, int32_t ndim,
                              const int64_t *shape) {
    return create_leaf(out, ctx, dtype, ndim, shape, NULL,
                       "tlm_tensor_create");
}

TLM_API int tlm_tensor_from_f32(tlm_tensor **out, tlm_context *ctx,
                                int32_t ndim, const int64_t *shape,
                                const float *data) {
    return create_from(out, ctx, TLM_DTYPE_F32, ndim, shape, data,
                       "tlm_tensor_from_f32");
}

TLM_API int tlm_tensor_from_i32(tlm_tensor **out, tlm_context *ctx,
                                int32_t ndim, const int64_t *shape,
                                const int32_t *data) {
    return create_from(out, ctx, TLM_DTYPE_I32, ndim, shape, data,
                       "tlm_tensor_from_i32");
}

TLM_API void tlm_tensor_free(tlm_tensor *tensor) {
    if (tensor == NULL || tensor->magic != TLMI_TENSOR_MAGIC ||
        !tensor->is_leaf)
        return;
    tlm_context *ctx = tensor->ctx;
    if (tensor->prev != NULL)
        tensor->prev->next = tensor->next;
    else
        ctx->leaves = tensor->next;
    if (tensor->next != NULL)
        tensor->next->prev = tensor->prev;
    if (tensor->data_bytes > 0)
        tlmi_host_free(&ctx->host, tensor->data, tensor->data_bytes);
    if (tensor->grad != NULL)
        tlmi_host_free(&ctx->host, tensor->grad,
                       (size_t)tensor->numel * sizeof(float));
    tlmi_context_give_struct(ctx, tensor);
}

TLM_API int32_t tlm_tensor_ndim(const tlm_tensor *tensor) {
    int status = tlmi_tensor_check(tensor, "tlm_tensor_ndim: tensor");
    return status != TLM_OK ? status : tensor->ndim;
}

TLM_API int64_t tlm_tensor_dim(const tlm_tensor *tensor, int32_t axis) {
    int status = tlmi_tensor_check(tensor, "tlm_tensor_dim: tensor");
    if (status != TLM_OK)
        return status;
    int32_t resolved = axis < 0 ? axis + tensor->ndim : axis;
    if (resolved < 0 || resolved >= tensor->ndim)
        return tlmi_fail(&tensor->ctx->host, TLM_E_RANGE,
                         "tlm_tensor_dim: axis %d is outside a %d-D tensor",
                         (int)axis, (int)tensor->ndim);
    return tensor->shape[resolved];
}

TLM_API int32_t tlm_tensor_shape(const tlm_tensor *tensor, int64_t *shape,
                                 size_t capacity) {
    int status = tlmi_tensor_check(tensor, "tlm_tensor_shape: tensor");
    if (status != TLM_OK)
        return status;
    TLMI_CHECK_NOT_NULL(&tensor->ctx->host, "tlm_tensor_shape", shape);
    if (capacity < (size_t)tensor->ndim)
        return tlmi_fail(&tensor->ctx->host, TLM_E_RANGE,
                         "tlm_tensor_shape: capacity %zu < ndim %d",
                         capacity, (int)tensor->ndim);
    for (int32_t i = 0; i < tensor->ndim; i++)
        shape[i] = tensor->shape[i];
    return tensor->ndim;
}

TLM_API int64_t tlm_tensor_numel(const tlm_tensor *tensor) {
    int status = tlmi_tensor_check(tensor, "tlm_tensor_numel: tensor");
    return status != TLM_OK ? status : tensor->numel;
}

TLM_API int32_t tlm_tensor_dtype(const tlm_tensor *tensor) {
    int status = tlmi_tensor_check(tensor, "tlm_tensor_dtype: tensor");
    return status != TLM_OK ? status : tensor->dtype;
}

TLM_API tlm_context *tlm_tensor_context(const tlm_tensor *tensor) {
    if (tlmi_tensor_check(tensor, "tlm_tensor_context: tensor") != TLM_OK)
        return NULL;
    return tensor->ctx;
}

/* Shared checks of the copy functions: live tensor, right dtype, count. */
static int check_copy(const tlm_tensor *tensor, const void *buffer,
                      size_t count, int32_t dtype, const char *what) {
    char arg[96];
    snprintf(arg, sizeof arg, "%s: tensor", what);
    int status = tlmi_tensor_check(tensor, arg);
    if (status != TLM_OK)
        return status;
    tlmi_host *host = &tensor->ctx->host;
    TLMI_CHECK(host, buffer != NULL, TLM_E_INVALID, "%s: data is NULL", what);
    if (tensor->dtype != dtype)
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: the tensor holds %s, not %s%s", what,
                         tlmi_dtype_name(tensor->dtype), tlmi_dtype_name(dtype),
                         tlmi_dtype_is_quantized(tensor->dtype)
                             ? " (a quantized model's matrix: dequantize it "
                               "with tlm_model_quantize(..., TLM_WEIGHTS_F32))"
                             : "");
    if (count != (size_t)tensor->numel)
        return tlmi_fail(host, TLM_E_SHAPE,
                         "%s: count %zu differs from the tensor's %lld "
                         "elements",
                         what, count, (long long)tensor->numel);
    return TLM_OK;
}

static int check_writable(const tlm_tensor *tensor, const char *what) {
    if (tensor->read_only)
        return tlmi_fail(&tensor->ctx->host, TLM_E_STATE,
                         "%s: the tensor is read-only (a parameter of a "
                         "memory-mapped model)",
                         what);
    return TLM_OK;
}

/* Both dtypes' elements have one size, so the copies need no switch. */
_Static_assert(sizeof(float) == sizeof(int32_t), "f32 and i32 sizes differ");

/* tlm_tensor_set_f32 and _i32: `count` values of `dtype` copied into a
 * writable tensor. */
static int set_values(tlm_tensor *tensor, const void *data, size_t count,
                      int32_t dtype, const char *what) {
    TLMI_TRY(check_copy(tensor, data, count, dtype, what));
    TLMI_TRY(check_writable(tensor, what));
    memcpy(tensor->data, data, count * sizeof(float));
    return TLM_OK;
}

/* tlm_tensor_get_f32 and _i32: `count` values of `dtype` copied out. */
static int get_values(const tlm_tensor *tensor, void *data, size_t count,
                      int32_t dtype, const char *what) {
    TLMI_TRY(check_copy(tensor, data, count, dtype, what));
    memcpy(data, tensor->data, count * sizeof(float));
    return TLM_OK;
}

TLM_API int tlm_tensor_set_f32(tlm_tensor *tensor, const float *data,
                               size_t count) {
    return set_values(tensor, data, count, TLM_DTYPE_F32, "tlm_tensor_set_f32");
}

TLM_API int tlm_tensor_set_i32(tlm_tensor *tensor, const int32_t *data,
                               size_t count) {
    return set_values(tensor, data, count, TLM_DTYPE_I32, "tlm_tensor_set_i32");
}

TLM_API int tlm_tensor_get_f32(const tlm_tensor *tensor, float *data,
                               size_t count) {
    if (tensor != NULL && tensor->magic == TLMI_TENSOR_MAGIC &&
        tlmi_dtype_is_quantized(tensor->dtype)) {
        /* A quantized matrix [rows, cols]: its values as float32. */
        TLMI_TRY(check_copy(tensor, data, count, tensor->dtype,
                            "tlm_tensor_get_f32"));
        const tlmi_weights w = tlmi_tensor_weights(tensor);
        tlmi_weights_dequantize_rows(data, &w, 0, w.rows);
        return TLM_OK;
    }
    return get_values(tensor, data, count, TLM_DTYPE_F32, "tlm_tensor_get_f32");
}

TLM_API int tlm_tensor_get_i32(const tlm_tensor *tensor, int32_t *data,
                               size_t count) {
    return get_values(tensor, data, count, TLM_DTYPE_I32, "tlm_tensor_get_i32");
}

/* tlm_tensor_data_f32 and _i32: the values of a tensor of `dtype`, or
 * NULL with the failure recorded. */
static void *data_of(tlm_tensor *tensor, int32_t dtype, const char *what) {
    char arg[96];
    snprintf(arg, sizeof arg, "%s: tensor", what);
    if (tlmi_tensor_check(tensor, arg) != TLM_OK)
        return NULL;
    if (tensor->dtype != dtype) {
        tlmi_fail(&tensor->ctx->host, TLM_E_INVALID,
                  "%s: the tensor holds %s%s", what,
                  tlmi_dtype_name(tensor->dtype),
                  tlmi_dtype_is_quantized(tensor->dtype)
                      ? " (quantized weights: tlm_tensor_get_f32 copies them "
                        "out dequantized)"
                      : "");
        return NULL;
    }
    return tensor->data;
}

TLM_API float *tlm_tensor_data_f32(tlm_tensor *tensor) {
    return data_of(tensor, TLM_DTYPE_F32, "tlm_tensor_data_f32");
}

TLM_API int32_t *tlm_tensor_data_i32(tlm_tensor *tensor) {
    return data_of(tensor, TLM_DTYPE_I32, "tlm_tensor_data_i32");
}

TLM_API int tlm_tensor_set_requires_grad(tlm_tensor *tensor, int32_t flag) {
    int status = tlmi_tensor_check(tensor,
                                   "tlm_tensor_set_requires_grad: tensor");
    if (status != TLM_OK)
        return status;
    tlmi_host *host = &tensor->ctx->host;
    if (flag != 0 && flag != 1)
        return tlmi_fail(host, TLM_E_INVALID,
                         "tlm_tensor_set_requires_grad: flag %d is not 0 or 1",
                         flag);
    if (!tensor->is_leaf)
        return tlmi_fail(host, TLM_E_STATE,
                         "tlm_tensor_set_requires_grad: only leaf tensors "
                         "take the flag; results inherit it from their "
                         "inputs");
    if (flag && tensor->read_only)
        return check_writable(tensor, "tlm_tensor_set_requires_grad");
    if (flag && tensor->dtype != TLM_DTYPE_F32)
        return tlmi_fail(host, TLM_E_INVALID,
                         "tlm_tensor_set_requires_grad: a %s tensor has no "
                         "gradient%s",
                         tlmi_dtype_name(tensor->dtype),
                         tlmi_dtype_is_quantized(tensor->dtype)
                             ? " (quantized weights do not train: dequantize "
                               "first: tlm_model_quantize(..., TLM_WEIGHTS_F32))"
                             : "");
    if (flag && tensor->grad == NULL) {
        size_t bytes = (size_t)tensor->numel * sizeof(float);
        tensor->grad = tlmi_host_alloc(host, bytes, 64);
        if (tensor->grad == NULL)
            return tlmi_fail(host, TLM_E_NOMEM,
                             "tlm_tensor_set_requires_grad: allocating the "
                             "gradient (%zu bytes) failed",
                             bytes);
        memset(tensor->grad, 0, bytes);
    }
    tensor->requires_grad = flag;
    return TLM_OK;
}

TLM_API int tlm_tensor_requires_grad(const tlm_tensor *tensor) {
    int status = tlmi_tensor_check(tensor, "tlm_tensor_requires_grad: tensor");
    return status != TLM_OK ? status : tensor->requires_grad;
}

TLM_API int tlm_tensor_get_grad_f32(const tlm_tensor *tensor, float *grad,
                                size_t count) {
    int status = tlmi_tensor_check(tensor, "tlm_tensor_get_grad_f32: tensor");
    if (status != TLM_OK)
        return status;
    tlmi_host *host = &tensor->ctx->host;
    TLMI_CHECK_NOT_NULL(host, "tlm_tensor_get_grad_f32", grad);
    if (tensor->grad == NULL || !tensor->requires_grad)
        return tlmi_fail(host, TLM_E_STATE,
                         "tlm_tensor_get_grad_f32: the tensor has no gradient "
                         "(call tlm_tensor_set_requires_grad first)");
    if (count != (size_t)tensor->numel)
        return tlmi_fail(host, TLM_E_SHAPE,
                         "tlm_tensor_get_grad_f32: count %zu differs from the "
                         "tensor's %lld elements",
                         count, (long long)tensor->numel);
    memcpy(grad, tensor->grad, count * sizeof(float));
    return TLM_OK;
}

TLM_API float *tlm_tensor_grad_data_f32(tlm_tensor *tensor) {
    if (tlmi_tensor_check(tensor, "tlm_tensor_grad_data_f32: tensor") != TLM_OK)
        return NULL;
    return tensor->requires_grad ? tensor->grad : NULL;
}

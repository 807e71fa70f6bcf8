/*
 * The smallest program that uses an installed tlm: built by the install
 * test with nothing but `pkg-config --cflags --libs tlm`, once against the
 * shared library and once against the static one.
 */
#include <stdio.h>

#include <tlm.h>

int main(void) {
    if (tlm_version_number() != TLM_VERSION_NUMBER) {
        fprintf(stderr, "header %s but library %s\n", TLM_VERSION_STRING,
                tlm_version_string());
        return 1;
    }
    tlm_context *ctx = NULL;
    int status = tlm_context_create(&ctx, NULL);
    if (status != TLM_OK) {
        fprintf(stderr, "tlm_context_create: %s (%s)\n", tlm_strerror(status),
                tlm_last_error());
        return 1;
    }
    printf("tlm %s, %d thread(s)\n", tlm_version_string(),
           tlm_context_thread_count(ctx));
    tlm_context_free(ctx);
    return 0;
}

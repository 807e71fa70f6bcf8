/* Placeholder: replaced by the implementation. */
extern int tlmi_placeholder_sampler;

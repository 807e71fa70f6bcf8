/* CRC-32 (the IEEE 802.3 polynomial, as in zlib and PNG), the checksum of
 * every section of a .tlm file. */
#ifndef TLM_LIB_BASE_CRC32_H
#define TLM_LIB_BASE_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC over `size` more bytes: start with crc = 0. */
uint32_t tlmi_crc32(uint32_t crc, const void *data, size_t size);

#endif

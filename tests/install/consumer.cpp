// A C++ program built against an installed tlm with nothing but
// pkg-config: tlm.hpp's handles, a round trip through a tokenizer, and a
// failure that arrives as tlm::error with its status.
#include <tlm.hpp>

#include <iostream>

int main() {
    try {
        tlm::context ctx;
        tlm_tokenizer_params params = tlm::defaults<tlm_tokenizer_params>();
        params.kind = TLM_TOKENIZER_BYTE;
        tlm::tokenizer tok = tlm::tokenizer::train(ctx, "", params);
        if (tok.decode(tok.encode("héllo")) != "héllo")
            return 1;
        try {
            tlm::model::load(ctx, "/nonexistent/model.tlm");
            return 1;
        } catch (const tlm::error &e) {
            if (e.status() != TLM_E_IO)
                return 1;
        }
        std::cout << "consumer.cpp: tlm " << tlm::version() << " from C++\n";
        return 0;
    } catch (const tlm::error &e) {
        std::cerr << "consumer.cpp: " << e.what() << "\n";
        return 1;
    }
}

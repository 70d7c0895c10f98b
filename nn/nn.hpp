// rewind/nn/nn.hpp — every layer.
#pragma once

#include "activation.hpp"
#include "chain.hpp"
#include "dense.hpp"
#include "dropout.hpp"
#include "embedding.hpp"
#include "init.hpp"
#include "cell.hpp"
#include "gru_cell.hpp"
#include "layer_norm.hpp"
#include "lstm_cell.hpp"
#include "module.hpp"
#include "recur.hpp"
#include "reset.hpp"
#include "sequence.hpp"
#include "torch_import.hpp"
#include "serialize.hpp"

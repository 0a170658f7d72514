"""Training scripts written the way PyTorch's own examples write them, run once with torch and once with the
imports switched to normlab: the losses must be equal in float64.

* the MNIST example's CNN (Conv2d, Dropout2d/Dropout, max_pool2d, log_softmax, NLL) with Adadelta and StepLR;
* the VAE example (Linear encoder/decoder, reparameterisation, BCE + KL divergence) with Adam;
* the word-level language model (Embedding, LSTM, Dropout, Linear decoder, cross-entropy, gradient clipping,
  truncated BPTT with detached hidden state) with SGD and a ReduceLROnPlateau schedule;
* the same model family with a Transformer encoder (positional encoding buffer, causal mask from
  ``generate_square_subsequent_mask``, pre-LN layers, GELU) with AdamW and OneCycleLR.

Randomness is the one thing switched off: the dropout rates are a script variable (0 for the
comparison; a run with the examples' rates checks only that the script trains), and the VAE's
``randn_like`` noise is drawn once and handed to both runs.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import normlab

CNN_SCRIPT = '''
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.conv2 = nn.Conv2d(4, 8, 3, 1)
        self.dropout1 = nn.Dropout2d(DROPOUT)
        self.dropout2 = nn.Dropout(DROPOUT * 2)
        self.fc1 = nn.Linear(8 * 2 * 2, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output

def train(model, data, targets, optimizer, epoch, log):
    model.train()
    for batch_idx in range(len(data) // 16):
        x, y = data[batch_idx * 16:(batch_idx + 1) * 16], targets[batch_idx * 16:(batch_idx + 1) * 16]
        optimizer.zero_grad()
        output = model(x)
        loss = F.nll_loss(output, y)
        loss.backward()
        optimizer.step()
        log.append(loss.item())

model = Net().double()
model.load_state_dict(initial)
optimizer = optim.Adadelta(model.parameters(), lr=1.0)
scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
log, lrs = [], []
for epoch in range(1, 4):
    train(model, data, targets, optimizer, epoch, log)
    scheduler.step()
    lrs.append(scheduler.get_last_lr()[0])
'''

VAE_SCRIPT = '''
class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc21 = nn.Linear(32, 4)
        self.fc22 = nn.Linear(32, 4)
        self.fc3 = nn.Linear(4, 32)
        self.fc4 = nn.Linear(32, 64)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar, eps):
        std = torch.exp(0.5 * logvar)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x, eps):
        mu, logvar = self.encode(x.view(-1, 64))
        z = self.reparameterize(mu, logvar, eps)
        return self.decode(z), mu, logvar

def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 64), reduction='sum')
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD

model = VAE().double()
model.load_state_dict(initial)
optimizer = optim.Adam(model.parameters(), lr=1e-2)
log = []
for epoch in range(3):
    model.train()
    for batch_idx in range(len(data) // 8):
        x = data[batch_idx * 8:(batch_idx + 1) * 8]
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(x, noise[epoch][batch_idx])
        loss = loss_function(recon_batch, x, mu, logvar)
        loss.backward()
        optimizer.step()
        log.append(loss.item())
'''

LSTM_SCRIPT = '''
class RNNModel(nn.Module):
    def __init__(self, ntoken, ninp, nhid, nlayers, dropout):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.nlayers, self.nhid = nlayers, nhid

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output)
        decoded = decoded.view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        return (torch.zeros(self.nlayers, bsz, self.nhid, dtype=torch.float64),
                torch.zeros(self.nlayers, bsz, self.nhid, dtype=torch.float64))

def repackage_hidden(h):
    if isinstance(h, tuple):
        return tuple(repackage_hidden(v) for v in h)
    return h.detach()

def get_batch(source, i, bptt=5):
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)

model = RNNModel(30, 12, 16, 2, DROPOUT).double()
model.load_state_dict(initial)
criterion = nn.NLLLoss()
optimizer = optim.SGD(model.parameters(), lr=2.0)
scheduler = ReduceLROnPlateau(optimizer, factor=0.25, patience=0)
log, lrs = [], []
for epoch in range(3):
    model.train()
    hidden = model.init_hidden(4)
    for i in range(0, train_data.size(0) - 1, 5):
        data, targets = get_batch(train_data, i)
        hidden = repackage_hidden(hidden)
        model.zero_grad()
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        optimizer.step()
        log.append(loss.item())
    scheduler.step(log[-1] if epoch != 1 else 10.0)
    lrs.append(scheduler.get_last_lr()[0])
'''

TRANSFORMER_SCRIPT = '''
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.1, max_len=64):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = torch.zeros(max_len, d_model, dtype=torch.float64)
        position = torch.arange(0, max_len, dtype=torch.float64).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        pe = pe.unsqueeze(0).transpose(0, 1)
        self.register_buffer('pe', pe)

    def forward(self, x):
        x = x + self.pe[:x.size(0), :]
        return self.dropout(x)

class TransformerModel(nn.Module):
    def __init__(self, ntoken, ninp, nhead, nhid, nlayers, dropout):
        super().__init__()
        self.src_mask = None
        self.pos_encoder = PositionalEncoding(ninp, dropout)
        encoder_layers = nn.TransformerEncoderLayer(ninp, nhead, nhid, dropout, activation="gelu", norm_first=True)
        self.transformer_encoder = nn.TransformerEncoder(encoder_layers, nlayers, norm=nn.LayerNorm(ninp),
                                                         enable_nested_tensor=False)
        self.input_emb = nn.Embedding(ntoken, ninp)
        self.ninp = ninp
        self.decoder = nn.Linear(ninp, ntoken)

    def forward(self, src):
        if self.src_mask is None or self.src_mask.size(0) != len(src):
            self.src_mask = nn.Transformer.generate_square_subsequent_mask(len(src)).double()
        src = self.input_emb(src) * math.sqrt(self.ninp)
        src = self.pos_encoder(src)
        output = self.transformer_encoder(src, self.src_mask)
        output = self.decoder(output)
        return F.log_softmax(output, dim=-1)

model = TransformerModel(30, 16, 4, 32, 2, DROPOUT).double()
model.load_state_dict(initial)
criterion = nn.NLLLoss()
optimizer = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
steps = 3 * ((train_data.size(0) - 1 + 5) // 6)
scheduler = OneCycleLR(optimizer, max_lr=5e-3, total_steps=steps)
log, lrs = [], []
for epoch in range(3):
    model.train()
    for i in range(0, train_data.size(0) - 1, 6):
        seq_len = min(6, len(train_data) - 1 - i)
        data, targets = train_data[i:i + seq_len], train_data[i + 1:i + 1 + seq_len].reshape(-1)
        model.zero_grad()
        output = model(data).view(-1, 30)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        scheduler.step()
        log.append(loss.item())
        lrs.append(scheduler.get_last_lr()[0])
'''


def _run(script: str, lib: str, **values):
    """Execute ``script`` with ``torch``/``nn``/``F``/``optim`` bound to torch or normlab; return its namespace."""
    if lib == "torch":
        import torch.nn as lib_nn
        import torch.nn.functional as lib_F
        import torch.optim as lib_optim
        from torch.optim import lr_scheduler
        lib_torch = torch
        values = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else
                      {key: torch.tensor(a) for key, a in v.items()} if isinstance(v, dict) else
                      [[torch.tensor(a) for a in row] for row in v] if isinstance(v, list) else v)
                  for k, v in values.items()}
    else:
        import normlab.nn as lib_nn
        import normlab.nn.functional as lib_F
        import normlab.optim as lib_optim
        from normlab.optim import lr_scheduler
        lib_torch = normlab
        values = {k: (normlab.tensor(v) if isinstance(v, np.ndarray) else
                      [[normlab.tensor(a) for a in row] for row in v] if isinstance(v, list) else v)
                  for k, v in values.items()}
    namespace = dict(torch=lib_torch, nn=lib_nn, F=lib_F, optim=lib_optim, math=math,
                     StepLR=lr_scheduler.StepLR, ReduceLROnPlateau=lr_scheduler.ReduceLROnPlateau,
                     OneCycleLR=lr_scheduler.OneCycleLR, **values)
    exec(script, namespace)
    return namespace


def _compare(script: str, make_model, values: dict, rtol: float = 1e-9):
    torch.manual_seed(0)
    initial = {k: v.double().numpy().copy() for k, v in make_model().state_dict().items()}
    theirs = _run(script, "torch", initial=initial, DROPOUT=0.0, **values)
    ours = _run(script, "normlab", initial=initial, DROPOUT=0.0, **values)
    np.testing.assert_allclose(ours["log"], theirs["log"], rtol=rtol, atol=1e-12)
    if "lrs" in theirs:
        np.testing.assert_allclose(ours["lrs"], theirs["lrs"], rtol=1e-15)
    assert np.mean(ours["log"][-3:]) < np.mean(ours["log"][:3]), "the script should learn"
    return ours, theirs


def _torch_model(script: str, build: str):
    """The script's model class, built by torch (for its initial weights)."""
    namespace = dict(torch=torch, nn=torch.nn, F=torch.nn.functional, math=math, DROPOUT=0.0)
    exec(script.split("\nmodel = ")[0], namespace)
    return lambda: eval(build, namespace)


def test_mnist_example_cnn_with_adadelta_and_steplr(rng):
    values = dict(data=rng.standard_normal((48, 1, 8, 8)), targets=rng.integers(0, 10, 48))
    ours, theirs = _compare(CNN_SCRIPT, _torch_model(CNN_SCRIPT, "Net()"), values)
    assert ours["lrs"] == pytest.approx([0.7, 0.49, 0.343])


def test_vae_example_with_bce_and_adam(rng):
    values = dict(data=rng.uniform(0, 1, (32, 1, 8, 8)),
                  noise=[[rng.standard_normal((8, 4)) for _ in range(4)] for _ in range(3)])
    _compare(VAE_SCRIPT, _torch_model(VAE_SCRIPT, "VAE()"), values)


def test_word_language_model_with_embedding_lstm_clipping_and_plateau_schedule(rng):
    values = dict(train_data=rng.integers(0, 30, (31, 4)))
    ours, _ = _compare(LSTM_SCRIPT, _torch_model(LSTM_SCRIPT, "RNNModel(30, 12, 16, 2, 0.0)"), values)
    assert ours["lrs"][-1] < 2.0  # the plateau schedule reduced the rate


def test_transformer_language_model_with_adamw_and_onecycle(rng):
    values = dict(train_data=rng.integers(0, 30, (25, 4)))
    _compare(TRANSFORMER_SCRIPT, _torch_model(TRANSFORMER_SCRIPT, "TransformerModel(30, 16, 4, 32, 2, 0.0)"),
             values, rtol=1e-8)


@pytest.mark.parametrize("script,values", [
    (CNN_SCRIPT, lambda rng: dict(data=rng.standard_normal((48, 1, 8, 8)), targets=rng.integers(0, 10, 48))),
    (LSTM_SCRIPT, lambda rng: dict(train_data=rng.integers(0, 30, (31, 4)))),
    (TRANSFORMER_SCRIPT, lambda rng: dict(train_data=rng.integers(0, 30, (25, 4)))),
], ids=["cnn", "lstm", "transformer"])
def test_the_scripts_train_with_the_examples_dropout_rates(rng, script, values):
    """With dropout on (0.25 / 0.5, 0.2, 0.1): no equality with torch (other random streams), but it trains."""
    torch.manual_seed(0)
    build = {CNN_SCRIPT: "Net()", LSTM_SCRIPT: "RNNModel(30, 12, 16, 2, 0.0)",
             TRANSFORMER_SCRIPT: "TransformerModel(30, 16, 4, 32, 2, 0.0)"}[script]
    initial = {k: v.double().numpy().copy() for k, v in _torch_model(script, build)().state_dict().items()}
    ours = _run(script, "normlab", initial=initial, DROPOUT=0.25 if script is CNN_SCRIPT else 0.2, **values(rng))
    assert np.all(np.isfinite(ours["log"])) and np.mean(ours["log"][-3:]) < np.mean(ours["log"][:3])

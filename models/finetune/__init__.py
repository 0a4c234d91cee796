"""A new classification head for an emotion2vec checkpoint, trained on embeddings (issue #16, part B).

emotion2vec's classifier is one ``Linear(embed_dim, n_classes)`` (``module.proj``) applied to features; a
chunk's or a file's logits are ``proj(mean(features)) = W @ mean(features) + b`` (``proj`` is linear, so this
equals the mean of the frame logits the engine publishes). The engine's embedding (``Result.embedding``, also
stored per chunk in ClickHouse ``scores.embedding`` with ``EMOWATCH_MODEL__EMBEDDINGS=true``) is exactly that
mean feature, so a head trained on embeddings is exact for the model: the encoder is not touched and training is
cheap on CPU.

Roles:

* :mod:`.examples`: the training examples (embedding, label, the labelled row it came from) and the stratified,
  row-grouped held-out split;
* :mod:`.audio`: embeddings of labelled WAV files (whole files, segmented like :mod:`emowatch.models.utterance`);
* :mod:`.history`: stored chunk embeddings of labelled calls (``--from-history``);
* :mod:`.head`: class weights and the training loop (the new head starts from the current one);
* :mod:`.output`: the checkpoint directory, ``MODEL_CARD.md`` and ``finetune.json``;
* :mod:`.run`: the whole job, as ``emowatch model finetune-head`` runs it.
"""

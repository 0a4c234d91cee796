import pytest

from emowatch.topics.registry import Topics, extra_topic_spec, topic_config


def test_an_extra_scores_topic_has_the_scores_spec_under_its_own_name():
    t = Topics(prefix="x.", partitions=6)
    spec = extra_topic_spec(t, "x.emowatch.scores.rescored.v1")
    assert spec.base_name == "x.emowatch.scores.rescored.v1" and spec.value_schema == "FrameScores"
    assert topic_config(spec) == topic_config(t.spec("scores")) and spec.co_partitioned
    assert t.partitions_for(spec) == 6


@pytest.mark.parametrize("name", ["x.emowatch.scores.v1", "x.emowatch.audio.v1", "x.emowatch.rules.v1"])
def test_the_deployments_own_topics_are_refused(name):
    with pytest.raises(ValueError, match="separate topic"):
        extra_topic_spec(Topics(prefix="x."), name)


@pytest.mark.parametrize("name", ["", "a b", "a/b", "..", "a" * 250])
def test_illegal_names_are_refused(name):
    with pytest.raises(ValueError, match="legal topic name"):
        extra_topic_spec(Topics(), name)
